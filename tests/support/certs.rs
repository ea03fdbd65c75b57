//! Certificates made for a test with Debian's `openssl` command (`scripts/services` installs
//! it): a CA, a server certificate it signs for `DNS:localhost` only (so a client connecting
//! to `127.0.0.1` meets a host-name mismatch), and a second, unrelated CA (the wrong CA).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The PEM files of one test's certificates.
#[derive(Debug, Clone)]
pub struct Certs {
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// The server's certificate, for `DNS:localhost` only.
    pub server_cert: PathBuf,
    /// Its private key (unencrypted PKCS#8).
    pub server_key: PathBuf,
    /// A CA that signed nothing the servers present.
    pub other_ca: PathBuf,
}

impl Certs {
    /// Makes the certificates in `dir` (created if need be). Valid for two days.
    pub fn make(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n\
             [ca]\nbasicConstraints = critical, CA:TRUE\n\
             keyUsage = critical, keyCertSign, cRLSign\n\
             subjectKeyIdentifier = hash\n\
             [server]\nbasicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature, keyEncipherment\n\
             extendedKeyUsage = serverAuth\n\
             subjectAltName = DNS:localhost\n\
             subjectKeyIdentifier = hash\n\
             authorityKeyIdentifier = keyid\n",
        )
        .unwrap();
        let certs = Self {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            other_ca: dir.join("other-ca.pem"),
        };
        for (name, subject) in [
            ("ca", "/CN=contact-import test CA"),
            ("other-ca", "/CN=contact-import unrelated CA"),
        ] {
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-days",
                    "2",
                    "-config",
                    "ca.cnf",
                    "-extensions",
                    "ca",
                    "-subj",
                    subject,
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
        }
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-config",
                "ca.cnf",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ca.cnf",
                "-extensions",
                "server",
                "-out",
                "server.pem",
            ],
        );
        certs
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian's openssl package; scripts/services installs it)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
