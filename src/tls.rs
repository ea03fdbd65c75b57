//! The one TLS stack of the binary (rustls, ring): client configurations for the broker
//! (`amqps://` and RabbitMQ's URI query parameters, read by the broker module) and the database
//! (libpq's `sslmode` and friends, read by the store's `connect`) are built here, so both
//! verify alike and a certificate problem is reported in the same words.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which certificate authorities a server's certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The system's trust store (`/etc/ssl/certs` and the like).
    System,
    /// Only the certificates in this PEM file.
    File(PathBuf),
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// The chain to a root and the host name (libpq's `verify-full`, RabbitMQ's
    /// `verify_peer`).
    Full,
    /// The chain only, whatever name the certificate is for (libpq's `verify-ca`).
    ChainOnly,
    /// Nothing: encrypted, but anyone in the middle can pretend to be the server (libpq's
    /// `require` without a root certificate, RabbitMQ's `verify=verify_none`).
    Nothing,
}

/// A client certificate and its key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The certificate (chain), PEM.
    pub certificate: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1), unencrypted.
    pub key: PathBuf,
}

/// What a TLS client configuration is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// What the server's certificate must chain to.
    pub roots: Roots,
    /// How much of it is checked.
    pub verify: Verify,
    /// The client certificate, when the server asks for one.
    pub identity: Option<Identity>,
}

/// Why a TLS configuration could not be built. Each names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate file cannot be read or parsed.
    #[error("reading the certificate file {}: {source}", path.display())]
    Certificates {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate file holds no PEM certificate.
    #[error("the certificate file {} holds no certificate", .0.display())]
    NoCertificate(PathBuf),
    /// The private key file cannot be read or parsed.
    #[error("reading the private key file {}: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// The system's trust store is empty or unreadable.
    #[error("loading the system's root certificates: {0}")]
    SystemRoots(String),
    /// rustls refused the combination (a key that does not match its certificate, …).
    #[error("the TLS configuration is invalid: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds the rustls client configuration for `settings`.
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Roots are read only when something is verified: `sslmode=prefer` (libpq's default)
    // must work on a machine without a trust store.
    let webpki = || -> Result<Arc<WebPkiServerVerifier>, TlsError> {
        let roots = Arc::new(root_store(&settings.roots)?);
        WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))
    };
    let verifier: Arc<dyn ServerCertVerifier> = match settings.verify {
        Verify::Full => webpki()?,
        Verify::ChainOnly => Arc::new(ChainOnly(webpki()?)),
        Verify::Nothing => Arc::new(NoVerification(provider.clone())),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(match &settings.identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let chain = certificates(&identity.certificate)?;
            let key =
                PrivateKeyDer::from_pem_file(&identity.key).map_err(|source| TlsError::Key {
                    path: identity.key.clone(),
                    source,
                })?;
            builder.with_client_auth_cert(chain, key)?
        }
    })
}

fn root_store(roots: &Roots) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or("none found".to_owned(), ToString::to_string);
                return Err(TlsError::SystemRoots(why));
            }
            store.add_parsable_certificates(found.certs);
        }
        Roots::File(path) => {
            for certificate in certificates(path)? {
                store.add(certificate)?;
            }
        }
    }
    Ok(store)
}

/// Every certificate of a PEM file, at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |source| TlsError::Certificates {
        path: path.to_owned(),
        source,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certificates)
}

/// libpq's `verify-ca`: the chain is verified, the name is not.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// No verification of the certificate, as asked for; the handshake's signatures are still
/// checked, so the connection is at least encrypted to whoever holds the certificate's key.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether an error chain holds a certificate problem, and which, in words an operator
/// recognises ("certificate expired", "certificate is not valid for the host name", …).
pub fn describe_certificate_error(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(rustls::Error::InvalidCertificate(problem)) = e.downcast_ref::<rustls::Error>()
        {
            return Some(certificate_problem(problem));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(rustls::Error::InvalidCertificate(problem)) =
                inner.downcast_ref::<rustls::Error>()
        {
            return Some(certificate_problem(problem));
        }
        current = e.source();
    }
    None
}

fn certificate_problem(problem: &CertificateError) -> String {
    let what = match problem {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server's certificate has expired".to_owned()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet".to_owned()
        }
        CertificateError::UnknownIssuer => {
            "the server's certificate is not signed by a trusted certificate authority (wrong CA?)"
                .to_owned()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the server's certificate is not valid for the host name connected to".to_owned()
        }
        CertificateError::Revoked => "the server's certificate is revoked".to_owned(),
        other => format!("the server's certificate is invalid: {other:?}"),
    };
    format!("TLS certificate error: {what}")
}
