//! Loading a certificate chain and its private key from PEM files, with errors that name the
//! file and say what is wrong with it.

use std::io;
use std::path::{Path, PathBuf};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Why TLS could not be set up. Each message is one line naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate file {}: {source}", path.display())]
    ReadCert { path: PathBuf, source: io::Error },
    #[error("certificate file {} holds no PEM certificate", path.display())]
    NoCert { path: PathBuf },
    #[error("certificate file {} is not valid PEM: {reason}", path.display())]
    BadCertPem { path: PathBuf, reason: String },
    #[error("certificate file {}: {reason}", path.display())]
    BadCert {
        path: PathBuf,
        reason: rustls::Error,
    },
    #[error("cannot read key file {}: {source}", path.display())]
    ReadKey { path: PathBuf, source: io::Error },
    #[error("key file {} holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)", path.display())]
    NoKey { path: PathBuf },
    #[error("key file {} is not valid PEM: {reason}", path.display())]
    BadKeyPem { path: PathBuf, reason: String },
    #[error("key file {}: unsupported private key: {reason}", path.display())]
    BadKey {
        path: PathBuf,
        reason: rustls::Error,
    },
    #[error("key file {} does not match the certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot make the development certificate: {0}")]
    DevCert(String),
    #[error("cannot write the development certificate to {}: {source}", path.display())]
    WritePem { path: PathBuf, source: io::Error },
    #[error("TLS: {0}")]
    Rustls(rustls::Error),
}

/// Reads `cert` (a chain, leaf first) and `key`, and checks that the key is the leaf's.
pub(crate) fn load(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = read_chain(cert)?;
    let key_der = read_key(key)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|reason| TlsError::BadKey {
            path: key.to_path_buf(),
            reason,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            })
        }
        // The provider could not tell (no public key for this key type): let the handshake
        // show it, as rustls does.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(reason) => Err(TlsError::BadCert {
            path: cert.to_path_buf(),
            reason,
        }),
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_bytes = std::fs::read(path).map_err(|source| TlsError::ReadCert {
        path: path.to_path_buf(),
        source,
    })?;
    let chain = CertificateDer::pem_slice_iter(&pem_bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|err| TlsError::BadCertPem {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem_bytes = std::fs::read(path).map_err(|source| TlsError::ReadKey {
        path: path.to_path_buf(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&pem_bytes).map_err(|err| match err {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        other => TlsError::BadKeyPem {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}
