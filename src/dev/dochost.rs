//! The HTTPS host of the sample client's metadata document, with the CA
//! that vouches for it.
//!
//! A client_id must be an https URL, and the proxy fetches it with full
//! certificate verification, so dev mode needs a certificate the proxy
//! trusts for 127.0.0.1. It generates a CA (ECDSA P-256) whose name
//! constraints permit only 127.0.0.1/32 and a leaf for that address, keeps
//! both keys in memory only, and hands the CA certificate to the proxy as
//! `fetch.extra_root_certs`. Even if the CA file were trusted elsewhere by
//! mistake, it could vouch for nothing but loopback, and its key is gone
//! when the process ends.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use super::DevError;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/client.json";

/// The generated CA and the document host's certificate.
pub struct DevPki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for DevPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The leaf's private key stays out of any output.
        f.debug_struct("DevPki").finish_non_exhaustive()
    }
}

impl DevPki {
    /// A fresh CA, constrained to `ip`, and a server certificate for `ip`.
    pub fn generate(ip: IpAddr) -> Result<DevPki, DevError> {
        let failed = |error: rcgen::Error| DevError::Certificate(error.to_string());
        let ca_key = KeyPair::generate().map_err(failed)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        ca.distinguished_name.push(
            DnType::CommonName,
            "cimd-proxy dev CA (throw-away, 127.0.0.1 only)",
        );
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let host_prefix = if ip.is_ipv4() { 32 } else { 128 };
        ca.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                ip,
                host_prefix,
            ))],
            excluded_subtrees: Vec::new(),
        });
        let ca_cert = ca.self_signed(&ca_key).map_err(failed)?;
        let ca_pem = ca_cert.pem();
        let ca_der = ca_cert.der().clone();
        let issuer = Issuer::new(ca, ca_key);

        let leaf_key = KeyPair::generate().map_err(failed)?;
        let mut leaf = CertificateParams::new(vec![ip.to_string()]).map_err(failed)?;
        leaf.distinguished_name = rcgen::DistinguishedName::new();
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(failed)?;
        Ok(DevPki {
            ca_pem,
            chain: vec![leaf_cert.der().clone(), ca_der],
            key_der: leaf_key.serialize_der(),
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A TLS acceptor presenting the leaf (rustls, ring provider, HTTP/1.1).
    pub fn acceptor(&self) -> Result<TlsAcceptor, DevError> {
        let failed = |error: rustls::Error| DevError::Certificate(error.to_string());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(failed)?
        .with_no_client_auth()
        .with_single_cert(self.chain.clone(), key)
        .map_err(failed)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Serves `document` at [`DOCUMENT_PATH`]; everything else is a 404.
pub fn router(document: String) -> Router {
    let document: Arc<str> = document.into();
    Router::new()
        .route(
            DOCUMENT_PATH,
            get(move || {
                let document = Arc::clone(&document);
                async move { serve_document(&document) }
            }),
        )
        .fallback(|| async { StatusCode::NOT_FOUND })
}

fn serve_document(document: &str) -> Response {
    let mut response = (StatusCode::OK, document.to_owned()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // The proxy's cache floor (one minute) applies anyway; say so plainly.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn the_ca_is_constrained_to_the_one_address() {
        let pki = DevPki::generate(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(pki.chain.len(), 2);
        // The leaf verifies under the CA for 127.0.0.1, and not for another
        // address: the name constraint and the SAN both hold.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.chain[1].clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let now = rustls_pki_types::UnixTime::now();
        let verify = |ip: Ipv4Addr| {
            verifier.verify_server_cert(
                &pki.chain[0],
                &[],
                &rustls_pki_types::ServerName::from(IpAddr::V4(ip)),
                &[],
                now,
            )
        };
        use rustls::client::danger::ServerCertVerifier;
        assert!(verify(Ipv4Addr::LOCALHOST).is_ok());
        assert!(verify(Ipv4Addr::new(127, 0, 0, 2)).is_err());
        assert!(pki.acceptor().is_ok());
    }
}
