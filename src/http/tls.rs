//! TLS for HTTP/1.1 + HTTP/2 (ALPN) and HTTP/3 (QUIC): certificates from
//! files, or a self-signed one for development.
//!
//! rustls with the aws-lc-rs provider; [`install_crypto_provider`] must run
//! before any rustls or quinn configuration is built (the dependency tree
//! also carries ring, and rustls refuses to guess between two providers).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} from {path}: {reason}")]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot store the self-signed certificate in {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate and key do not form a usable TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Installs aws-lc-rs as the process's rustls provider; later calls are no-ops.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A certificate chain and its private key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Loads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsError::Read {
                what: "certificates",
                path: cert.to_owned(),
                reason: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cert.to_owned(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Read {
            what: "a private key",
            path: key.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Identity { chain, key })
    }

    /// The development certificate in `dir` (`self-signed-cert.pem`,
    /// `self-signed-key.pem`) for localhost, 127.0.0.1 and ::1, generated on
    /// first use and reused afterwards so that clients can keep trusting it.
    pub fn self_signed(dir: &Path) -> Result<(Self, PathBuf), TlsError> {
        let cert_path = dir.join("self-signed-cert.pem");
        let key_path = dir.join("self-signed-key.pem");
        if !(cert_path.is_file() && key_path.is_file()) {
            let generated = rcgen::generate_simple_self_signed(vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ])?;
            let store = |path: &Path, contents: String| {
                std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(path, contents))
                    .map_err(|source| TlsError::Store {
                        path: path.to_owned(),
                        source,
                    })
            };
            store(&key_path, generated.signing_key.serialize_pem())?;
            store(&cert_path, generated.cert.pem())?;
        }
        Ok((Identity::from_files(&cert_path, &key_path)?, cert_path))
    }
}

/// The rustls server configuration for a listener offering `alpn` protocols.
pub fn server_config(identity: &Identity, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}
