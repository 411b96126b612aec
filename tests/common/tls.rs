//! TLS helpers for tests/tls.rs: test certificates (rcgen), and a raw rustls client that reports
//! what the server served (certificate, ALPN, resumption) and reads HTTP/1.1 responses with the
//! harness's `ResponseReader` (httparse, not our parser).
#![allow(dead_code)]

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned,
    SupportedProtocolVersion,
};

use crate::common::{RawResponse, ResponseReader};

/// A certificate (self-signed, for localhost and 127.0.0.1) and its key, as PEM, plus the DER
/// the server should present.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

fn self_signed(key: &rcgen::KeyPair, common_name: &str) -> rcgen::Certificate {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.self_signed(key).expect("self-sign")
}

/// A fresh ECDSA P-256 certificate (PKCS#8 key); each call makes a different one.
pub fn ec_cert(common_name: &str) -> TestCert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let cert = self_signed(&key, common_name);
    TestCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

/// The RSA key is a fixture (RSA key generation is slow and not what is under test), made once with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`
/// (PKCS#8), and the same key as PKCS#1 (`openssl pkey -traditional`). Test-only key.
pub const RSA_PKCS8_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCKzdAlqsriKtlw\n\
VYAu8GG6dDa9kRs80wt+EU3AkgTpckr6BfVxi0jM5LDdEmI2Ld0LtKkpXKgM9Cji\n\
MwbPOiyRfW5jfKWhrI+zrz2jVz2FP6wTRHlL/wAonYmmU8xn+9Elrbh9yYM7B+Mq\n\
MeBsfZ2Z1Mn/aKtldhTu8FeT10HfMVn3sCLtkMHbn8pdV+zm1HsORq51Yar+Ph23\n\
g/pcv5ZcG3TMJYQ5CnIUSdBRwqoxEm9b5tIwxlCo70AuXitEBvnmmFAmxjiHJ45R\n\
3C52UYZlZwBNezYDLIADaH0TUHTJvsllwNr720OaaK2y1wdjw16iHRwDuVcNwoyM\n\
vZp6TTdzAgMBAAECggEAA+rlwyWY/uom44dEpc6BPtIOq3bTFhPkzdf7yE6DifoA\n\
u+7IHyTHVyHk2Tbhtu+NC7DVJ20AjaEK646oh6SRY0FvIkRMQaeaEYAfYe+36LD3\n\
EKVZmqrMHKYmbB91J1tea00fmTLc6KEcqPFQb4kNSWBNzs7rxRWgmjlsio7EQq7a\n\
WujmvIXE0za/lwJNXSPPMbUhUiOY1BVngi4Xys9M2FwoETCstyggBtKmQTcUecPM\n\
b6T8hEw68oeqeg3XfcWgy8xIP8XPkiGnYLpLq1l1MGmXULSWvsRN8Xp/io7I5MLc\n\
EzwlFybVAoxXbaGJBHuY8Y6d42MO9SYF+GRwKyAhpQKBgQDCE1tWjHbGc1jSzdZk\n\
/ceUnJ6PtzeKvztLSPdz3gGxD7xUokDsmFkAwUqGeDKfvlIpPGt4Au3KsuyWoN1+\n\
5KihaMdP0eJgh8Me2nakL/V0Nrs1J6bAj5ZIJ3mWYwl4Dvute+jNVCf4vls3PSFN\n\
W6DAGP6m3zfEfdKgEkMLxJmpvwKBgQC3F7YvQ215Ais0DDE/k4W7tBXzeBqE0x9/\n\
7updbmJESc+ZqMXk65OCRYxHznG7eHTtqkDT8kH6fHN8WSgo4801iqm6/8BaDAnr\n\
hIHCrkf0v6KEUJFJLufKTapOlA3D5VOtcVJeVFMYZsAyYl3SVRyYXoZSNbBms7r0\n\
hHFDKWsXTQKBgGRJsGdXCoGeVYYJjAKACcRH8r/9Q5xVGYTb3dNoI6OlqAJsHfSk\n\
/UkgmSxHrJFTvg1FBZvsl4ipUQy9b/gEnQdbp7MdmEedoDyvU6OgjMxTBAaByO+0\n\
w0nh7DjEUL5Tr8aEQ1bnaAhoBabT1gOtl7HsuJruuli1VEQXa8IHBAjtAoGAW27j\n\
9EZf7QZAPQW5sl4hctNEAwn/dEVafbD6KR5uxFt36Ox3pxJd37iLjXBzK4PEIMvd\n\
A/r/J+/uXDLJ82GPoSVWDaSakl1gttS9WFNga8Enj5wMcdeSuVx/qC4XkbR8TSlC\n\
UQkbVhw57u9gmyEV3qGVwog9R4yJ2IIrbbbJXCECgYEAgLXxBxK7isWtWGk+KdhD\n\
m3LRF74ovRoulotIwg2cUUq9+H2HwoC9dflTBlHsJhnrDCEMC3A2xQLX5a5goIqp\n\
6Ddg0rQGdtMIOW35QYW44LGVhANeJFjI7/pbfQequSVMmYDz/+h1Xz1uMdEsSQSk\n\
8G90Zm202OrYB5cBovEbqxQ=\n\
-----END PRIVATE KEY-----\n\
";
pub const RSA_PKCS1_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEowIBAAKCAQEAis3QJarK4irZcFWALvBhunQ2vZEbPNMLfhFNwJIE6XJK+gX1\n\
cYtIzOSw3RJiNi3dC7SpKVyoDPQo4jMGzzoskX1uY3yloayPs689o1c9hT+sE0R5\n\
S/8AKJ2JplPMZ/vRJa24fcmDOwfjKjHgbH2dmdTJ/2irZXYU7vBXk9dB3zFZ97Ai\n\
7ZDB25/KXVfs5tR7DkaudWGq/j4dt4P6XL+WXBt0zCWEOQpyFEnQUcKqMRJvW+bS\n\
MMZQqO9ALl4rRAb55phQJsY4hyeOUdwudlGGZWcATXs2AyyAA2h9E1B0yb7JZcDa\n\
+9tDmmitstcHY8Neoh0cA7lXDcKMjL2aek03cwIDAQABAoIBAAPq5cMlmP7qJuOH\n\
RKXOgT7SDqt20xYT5M3X+8hOg4n6ALvuyB8kx1ch5Nk24bbvjQuw1SdtAI2hCuuO\n\
qIekkWNBbyJETEGnmhGAH2Hvt+iw9xClWZqqzBymJmwfdSdbXmtNH5ky3OihHKjx\n\
UG+JDUlgTc7O68UVoJo5bIqOxEKu2lro5ryFxNM2v5cCTV0jzzG1IVIjmNQVZ4Iu\n\
F8rPTNhcKBEwrLcoIAbSpkE3FHnDzG+k/IRMOvKHqnoN133FoMvMSD/Fz5Ihp2C6\n\
S6tZdTBpl1C0lr7ETfF6f4qOyOTC3BM8JRcm1QKMV22hiQR7mPGOneNjDvUmBfhk\n\
cCsgIaUCgYEAwhNbVox2xnNY0s3WZP3HlJyej7c3ir87S0j3c94BsQ+8VKJA7JhZ\n\
AMFKhngyn75SKTxreALtyrLslqDdfuSooWjHT9HiYIfDHtp2pC/1dDa7NSemwI+W\n\
SCd5lmMJeA77rXvozVQn+L5bNz0hTVugwBj+pt83xH3SoBJDC8SZqb8CgYEAtxe2\n\
L0NteQIrNAwxP5OFu7QV83gahNMff+7qXW5iREnPmajF5OuTgkWMR85xu3h07apA\n\
0/JB+nxzfFkoKOPNNYqpuv/AWgwJ64SBwq5H9L+ihFCRSS7nyk2qTpQNw+VTrXFS\n\
XlRTGGbAMmJd0lUcmF6GUjWwZrO69IRxQylrF00CgYBkSbBnVwqBnlWGCYwCgAnE\n\
R/K//UOcVRmE293TaCOjpagCbB30pP1JIJksR6yRU74NRQWb7JeIqVEMvW/4BJ0H\n\
W6ezHZhHnaA8r1OjoIzMUwQGgcjvtMNJ4ew4xFC+U6/GhENW52gIaAWm09YDrZex\n\
7Lia7rpYtVREF2vCBwQI7QKBgFtu4/RGX+0GQD0FubJeIXLTRAMJ/3RFWn2w+ike\n\
bsRbd+jsd6cSXd+4i41wcyuDxCDL3QP6/yfv7lwyyfNhj6ElVg2kmpJdYLbUvVhT\n\
YGvBJ4+cDHHXkrlcf6guF5G0fE0pQlEJG1YcOe7vYJshFd6hlcKIPUeMidiCK222\n\
yVwhAoGBAIC18QcSu4rFrVhpPinYQ5ty0Re+KL0aLpaLSMINnFFKvfh9h8KAvXX5\n\
UwZR7CYZ6wwhDAtwNsUC1+WuYKCKqeg3YNK0BnbTCDlt+UGFuOCxlYQDXiRYyO/6\n\
W30HqrklTJmA8//odV89bjHRLEkEpPBvdGZttNjq2AeXAaLxG6sU\n\
-----END RSA PRIVATE KEY-----\n\
";

/// A certificate for the fixture RSA key (signed with it), served with its PKCS#1 or PKCS#8 key.
pub fn rsa_cert(common_name: &str, pkcs1: bool) -> TestCert {
    let key = rcgen::KeyPair::from_pem(RSA_PKCS8_PEM).expect("RSA fixture key");
    let cert = self_signed(&key, common_name);
    TestCert {
        cert_pem: cert.pem(),
        key_pem: if pkcs1 { RSA_PKCS1_PEM } else { RSA_PKCS8_PEM }.to_owned(),
        der: cert.der().to_vec(),
    }
}

/// Accepts whatever certificate the server presents (the tests read it and compare), but checks
/// the handshake signatures properly, so a handshake only succeeds if the server holds the key.
#[derive(Debug)]
pub struct AnyCertificate(CryptoProvider);

impl ServerCertVerifier for AnyCertificate {
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

pub const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
pub const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
pub const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A client config (aws-lc-rs) for `versions` offering `alpn`, with rustls' default in-memory
/// session store (so connections made from the same `Arc` can resume).
pub fn client_config(
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> ClientConfig {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider.clone()))
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A client config that never resumes: every handshake is a full one and shows the certificate
/// the server holds now.
pub fn fresh_config(versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let mut config = client_config(versions, &[b"http/1.1"]);
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// A TLS connection from the raw rustls client, handshake done.
pub struct TlsConn {
    pub tls: StreamOwned<ClientConnection, TcpStream>,
    reader: ResponseReader,
}

/// The rustls error inside an `io::Error` from the handshake, if that is what it holds.
pub fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Connects to `addr` (SNI `localhost`) and completes the handshake.
pub fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<TlsConn> {
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").expect("server name");
    let mut conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut rounds = 0;
    while conn.is_handshaking() {
        rounds += 1;
        if rounds > 100 {
            return Err(io::Error::other("handshake does not progress"));
        }
        conn.complete_io(&mut tcp)?;
    }
    Ok(TlsConn {
        tls: StreamOwned::new(conn, tcp),
        reader: ResponseReader::new(),
    })
}

impl TlsConn {
    /// The leaf certificate the server presented (for a resumed session: the original one's).
    pub fn peer_leaf(&self) -> Vec<u8> {
        self.tls
            .conn
            .peer_certificates()
            .expect("server certificates")[0]
            .as_ref()
            .to_vec()
    }

    pub fn resumed(&self) -> bool {
        self.tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.tls.conn.alpn_protocol().map(|p| p.to_vec())
    }

    /// `GET path` on this (keep-alive) connection; one response.
    pub fn get(&mut self, path: &str) -> io::Result<RawResponse> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        self.tls.write_all(request.as_bytes())?;
        self.tls.flush()?;
        self.reader.read(&mut self.tls, false)
    }
}

/// The first bytes a rustls client sends: its ClientHello record(s).
pub fn client_hello_bytes() -> Vec<u8> {
    let name = ServerName::try_from("localhost").expect("server name");
    let mut conn = ClientConnection::new(Arc::new(client_config(BOTH, &[b"http/1.1"])), name)
        .expect("client connection");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write ClientHello");
    }
    out
}

/// SHA-256 of `der` as `AB:CD:…` (what the server's warning shows).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
