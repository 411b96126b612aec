//! TLS with rustls: the validated settings, the certificate in use (loaded from PEM files or made
//! at start-up for development), its reload on SIGHUP, and each shard's `ServerConfig`.
//!
//! No I/O on sockets here: the handshake and record layer run in `serve` through tokio-rustls.
//!
//! Shared across shards (built once, before the shards start): the certificate (an `ArcSwap`
//! read by every handshake, replaced whole on reload, so a handshake sees the old or the new
//! pair, never half of each) and the session-ticket keys (a client resumes on whichever shard
//! the kernel hands its next connection to). Per shard: the `ServerConfig` with its own
//! session-ID cache, so no lock is shared on the handshake path but the ticketer's.

mod certs;
mod dev_cert;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

pub use certs::TlsError;

/// ALPN protocol ids (RFC 7301), in our order of preference.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// A PEM certificate chain (leaf first) and its PEM private key (PKCS#8, PKCS#1 or SEC1).
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate for localhost, 127.0.0.1 and ::1, made at start-up; its PEM is
    /// written to the path, if one is given, so a client can be told to trust it.
    SelfSigned { write_pem: Option<PathBuf> },
}

/// The TLS listeners and how they are served, validated.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub listen: Vec<SocketAddr>,
    pub cert: CertSource,
    /// Offer HTTP/2 through ALPN.
    pub h2: bool,
    /// Sessions each shard remembers for resumption by session ID (TLS 1.2 clients without
    /// tickets); tickets need no server memory.
    pub session_cache: usize,
    /// The plain listeners answer every request with a 308 to the same URL over HTTPS.
    pub redirect_plain: bool,
}

impl TlsConfig {
    pub fn new(listen: Vec<SocketAddr>, cert: CertSource) -> Self {
        TlsConfig {
            listen,
            cert,
            h2: true,
            session_cache: 4096,
            redirect_plain: false,
        }
    }
}

/// The crypto provider: aws-lc-rs (measured against ring for issue #6: 1.37x the full TLS 1.3
/// handshakes per core, 1.5x the resumed ones, 1.17x AES-GCM), with AES-128-GCM first in each version: with AES-NI it is the cheapest suite per byte, and
/// `ignore_client_order` makes our order the one that counts (curl, for one, asks for AES-256
/// first).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::aws_lc_rs::cipher_suite as suite;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = vec![
        suite::TLS13_AES_128_GCM_SHA256,
        suite::TLS13_AES_256_GCM_SHA384,
        suite::TLS13_CHACHA20_POLY1305_SHA256,
        suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
}

/// What every shard's TLS shares: the certificate in use and the ticket keys.
pub struct TlsShared {
    config: TlsConfig,
    cert: Arc<CurrentCert>,
    ticketer: Arc<dyn ProducesTickets>,
}

impl std::fmt::Debug for TlsShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsShared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TlsShared {
    /// Loads (or makes) the certificate. Every error names the file at fault.
    pub fn new(config: &TlsConfig) -> Result<TlsShared, TlsError> {
        let provider = provider();
        let key = match &config.cert {
            CertSource::Files { cert, key } => certs::load(cert, key, &provider)?,
            CertSource::SelfSigned { write_pem } => {
                let dev = dev_cert::generate(&provider)?;
                tracing::warn!(
                    sha256 = %dev.fingerprint,
                    "no --cert given: serving a self-signed certificate for localhost, 127.0.0.1 \
                     and ::1, for development only"
                );
                if let Some(path) = write_pem {
                    std::fs::write(path, &dev.pem).map_err(|source| TlsError::WritePem {
                        path: path.clone(),
                        source,
                    })?;
                    tracing::info!(path = %path.display(), "development certificate written");
                }
                dev.key
            }
        };
        if kernel_tls_offered() {
            tracing::info!("TLS records are encrypted in userspace (rustls); this kernel offers kernel TLS, which percore does not use yet");
        } else {
            tracing::info!("TLS records are encrypted in userspace (rustls); this kernel offers no kernel TLS (no \"tls\" in tcp_available_ulp)");
        }
        let ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(TlsError::Rustls)?;
        Ok(TlsShared {
            config: config.clone(),
            cert: Arc::new(CurrentCert(ArcSwap::from_pointee(key))),
            ticketer,
        })
    }

    /// Reads the certificate files again and uses them for new handshakes; connections already
    /// open keep theirs. On error the old certificate stays. A self-signed one is kept as is.
    pub fn reload(&self) -> Result<bool, TlsError> {
        match &self.config.cert {
            CertSource::Files { cert, key } => {
                let fresh = certs::load(cert, key, &provider())?;
                self.cert.0.store(Arc::new(fresh));
                Ok(true)
            }
            CertSource::SelfSigned { .. } => Ok(false),
        }
    }

    /// A shard's own server configuration (call once per shard).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Rustls)?
            .with_no_client_auth()
            .with_cert_resolver(self.cert.clone());
        config.alpn_protocols = if self.config.h2 {
            vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]
        } else {
            vec![ALPN_HTTP11.to_vec()]
        };
        config.session_storage = ServerSessionMemoryCache::new(self.config.session_cache.max(1));
        config.ticketer = self.ticketer.clone();
        // Our suite order (AES-GCM first: AES-NI makes it the cheapest here) over the client's.
        config.ignore_client_order = true;
        // No 0-RTT: early data can be replayed, and nothing here knows which requests are safe.
        config.max_early_data_size = 0;
        Ok(Arc::new(config))
    }

    pub fn config(&self) -> &TlsConfig {
        &self.config
    }
}

/// Whether the kernel offers the `tls` upper-layer protocol (kernel TLS, which would let file
/// bodies go out with `sendfile` under TLS). Loaded modules only: percore does not load any.
fn kernel_tls_offered() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp")
        .is_ok_and(|ulps| ulps.split_whitespace().any(|ulp| ulp == "tls"))
}

/// The certificate new handshakes get; replaced whole on reload.
#[derive(Debug)]
struct CurrentCert(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}
