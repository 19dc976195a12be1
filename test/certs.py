# Copyright 2026 sensr_bridge developers
# SPDX-License-Identifier: Apache-2.0
"""Test certificates: two CAs and a server certificate for 127.0.0.1 (shared by TLS tests)."""

import shutil
import subprocess

import pytest


def _openssl(*args, cwd):
    subprocess.run(['openssl', *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_certificates(directory):
    """Create CA certificates and a server certificate for 127.0.0.1 signed by the first CA.

    Returns:
        (ca_path, other_ca_path, server_cert_path, server_key_path)

    """
    try:
        return _certificates_with_cryptography(directory)
    except ImportError:
        pass
    if shutil.which('openssl') is None:
        pytest.skip('neither the cryptography package nor the openssl CLI is available')
    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    for name in ('ca', 'other_ca'):
        _openssl('req', '-x509', *ec, '-keyout', f'{name}.key', '-out', f'{name}.crt', '-days',
                 '1', '-subj', f'/CN=test {name}', '-addext',
                 'basicConstraints=critical,CA:TRUE', '-addext',
                 'keyUsage=critical,keyCertSign,cRLSign', cwd=directory)
    (directory / 'server.ext').write_text(
        'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n'
        'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n'
        'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n')
    _openssl('req', '-new', *ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj',
             '/CN=127.0.0.1', cwd=directory)
    _openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key',
             '-set_serial', '2', '-days', '1', '-extfile', 'server.ext', '-out', 'server.crt',
             cwd=directory)
    return (directory / 'ca.crt', directory / 'other_ca.crt', directory / 'server.crt',
            directory / 'server.key')


def _certificates_with_cryptography(directory):
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def build(subject, key, issuer, issuer_key, extensions):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       issuer_key.public_key()), critical=False))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    def ca_extensions():
        return [(x509.BasicConstraints(ca=True, path_length=None), True),
                (x509.KeyUsage(digital_signature=False, content_commitment=False,
                               key_encipherment=False, data_encipherment=False,
                               key_agreement=False, key_cert_sign=True, crl_sign=True,
                               encipher_only=False, decipher_only=False), True)]

    paths = []
    ca_key = None
    for name in ('ca', 'other_ca'):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = build(f'test {name}', key, f'test {name}', key, ca_extensions())
        path = directory / f'{name}.crt'
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths.append(path)
        ca_key = ca_key or key
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = build('127.0.0.1', server_key, 'test ca', ca_key, [
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1')),
                                      x509.DNSName('localhost')]), False),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
    ])
    (directory / 'server.crt').write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (directory / 'server.key').write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return paths[0], paths[1], directory / 'server.crt', directory / 'server.key'
