"""Certificates for TLS tests, made with openssl: a CA, a server
certificate for 127.0.0.1/localhost, a client certificate, and a second,
unrelated CA with its own client certificate (one the server must refuse)."""

import subprocess
from pathlib import Path


def openssl(*args, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d: Path) -> Path:
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                "-out", f"{ca}.crt", "-days", "2", "-subj", f"/CN={ca}", cwd=d)
    for name, cn, ca, ext in (("srv", "127.0.0.1", "ca", ["-extfile", "san.ext"]),
                              ("cli", "scraper", "ca", []),
                              ("rogue", "scraper", "rogue-ca", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *ext, cwd=d)
    return d


def make_intermediate(d: Path) -> Path:
    """An intermediate CA signed by make_certs' CA (int-ca.crt) and a client
    certificate it signed (icli.crt): the intermediate alone as
    client_ca_file must trust icli, as Go's certificate pool does."""
    (d / "ca.ext").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "int-ca.key", "-out", "int-ca.csr",
            "-subj", "/CN=int-ca", cwd=d)
    openssl("x509", "-req", "-in", "int-ca.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "int-ca.crt", "-days", "2", "-extfile", "ca.ext", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "icli.key", "-out", "icli.csr",
            "-subj", "/CN=scraper", cwd=d)
    openssl("x509", "-req", "-in", "icli.csr", "-CA", "int-ca.crt", "-CAkey", "int-ca.key",
            "-CAcreateserial", "-out", "icli.crt", "-days", "2", cwd=d)
    return d
