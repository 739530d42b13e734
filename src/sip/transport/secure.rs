//! TLS for the SIP transports: loading the server certificate and key (PEM) into a rustls
//! configuration. TLS 1.2 and 1.3 only (rustls offers nothing older).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    #[error("certificate file {path}: {message}")]
    Certificate { path: String, message: String },
    #[error("private key file {path}: {message}")]
    Key { path: String, message: String },
    #[error("certificate and key do not form a TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// A rustls server configuration from a PEM certificate chain and a PEM private key.
///
/// # Errors
/// A file can not be read or holds no certificate/key, or they do not match.
pub fn load_tls_config(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| TlsSetupError::Certificate {
            path: cert.display().to_string(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsSetupError::Certificate {
            path: cert.display().to_string(),
            message: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Key {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsSetupError::Config)?;
    Ok(Arc::new(config))
}
