//! A throw-away certificate authority for the test origins.
//!
//! Every test run generates its own CA with rcgen, writes it as PEM for the
//! product's `fetch.extra_root_certs`, and issues leaf certificates for
//! whatever names or addresses the test origins claim. Nothing here touches
//! the process-default rustls crypto provider: configs are built with the
//! ring provider explicitly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The ring crypto provider, passed explicitly to every rustls config.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority generated for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

impl TestCa {
    /// Generates a fresh CA (ECDSA P-256) named after `label`.
    pub fn new(label: &str) -> Self {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("cimd-proxy test CA ({label})"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign CA");
        Self {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM encoded.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER encoded.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// Writes the CA certificate to `dir/ca.pem` and returns the path.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.cert_pem).expect("write ca.pem");
        path
    }

    /// A root store holding only this CA, for test clients.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert_der()).expect("add CA to root store");
        roots
    }

    /// Issues a server certificate for `names`; each entry is a DNS name or,
    /// when it parses as one, an IP address.
    pub fn issue(&self, names: &[&str]) -> LeafCert {
        let key = KeyPair::generate().expect("generate leaf key");
        let params = leaf_params(names);
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        LeafCert {
            chain: vec![cert.der().clone(), self.cert_der()],
            key_der: key.serialize_der(),
        }
    }
}

/// A server certificate chain and its private key.
pub struct LeafCert {
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl LeafCert {
    /// A self-signed certificate for `names`, trusted by nobody.
    pub fn self_signed(names: &[&str]) -> Self {
        let key = KeyPair::generate().expect("generate key");
        let cert = leaf_params(names).self_signed(&key).expect("self-sign");
        Self {
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
        }
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.clone()
    }

    /// The private key (PKCS#8).
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// A rustls server configuration presenting this certificate.
    ///
    /// No ALPN is configured, so any client offer (or none) is accepted and
    /// the connection speaks HTTP/1.1.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(self.chain(), self.key())
            .expect("server certificate");
        Arc::new(config)
    }
}

/// A rustls client configuration trusting only `roots`, for self-tests.
pub fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("leaf params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.clone());
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}
