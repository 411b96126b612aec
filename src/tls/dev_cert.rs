//! The self-signed development certificate: made at start-up when a TLS listener has no
//! `--cert`, so `https://localhost` works out of the box (with the client told to trust it).

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use super::TlsError;

pub(crate) struct DevCert {
    pub(crate) key: CertifiedKey,
    /// The certificate as PEM, for a client to trust.
    pub(crate) pem: String,
    /// SHA-256 of the certificate's DER, as `AB:CD:…` (what browsers and `openssl x509
    /// -fingerprint -sha256` show).
    pub(crate) fingerprint: String,
}

/// An ECDSA P-256 certificate for localhost, 127.0.0.1 and ::1.
pub(crate) fn generate(provider: &CryptoProvider) -> Result<DevCert, TlsError> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let made =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::DevCert(e.to_string()))?;
    let der = CertificateDer::from(made.cert.der().to_vec());
    let fingerprint = fingerprint(&der);
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let key = CertifiedKey::from_der(vec![der], key_der, provider).map_err(TlsError::Rustls)?;
    Ok(DevCert {
        key,
        pem: made.cert.pem(),
        fingerprint,
    })
}

fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut out = String::with_capacity(95);
    for (i, byte) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{byte:02X}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_cert_is_for_localhost_and_fingerprint_is_sha256_hex() {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let dev = generate(&provider).unwrap();
        assert!(dev.pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(dev.fingerprint.len(), 32 * 3 - 1);
        assert!(dev.key.keys_match().is_ok());
    }
}
