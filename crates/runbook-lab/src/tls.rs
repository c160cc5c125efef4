//! TLS for the lab's API server. client-go (kubectl) sends bearer tokens only
//! over TLS, so each lab makes its own CA and a server certificate for
//! 127.0.0.1/localhost at start; the kubeconfig carries the CA.

use std::sync::Arc;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A lab's certificates.
pub struct LabTls {
    /// The CA certificate in PEM, for the kubeconfig's `certificate-authority-data`.
    pub ca_pem: String,
    /// The server configuration for the listener.
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Makes a fresh CA and a server certificate for 127.0.0.1 and localhost.
pub fn generate() -> anyhow::Result<LabTls> {
    let ca_key = KeyPair::generate().context("generating the lab CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, "runbook-lab-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).context("signing the lab CA")?;

    let server_key = KeyPair::generate().context("generating the lab server key")?;
    let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    server_params.distinguished_name.push(DnType::CommonName, "runbook-lab-apiserver");
    let server_cert = server_params.signed_by(&server_key, &ca).context("signing the lab server certificate")?;

    let chain = vec![server_cert.der().clone(), CertificateDer::from(ca.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // HTTP/1.1 only: exec and port-forward upgrade to websockets, which
    // clients do over HTTP/1.1 connections.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(LabTls { ca_pem: ca.pem(), server_config: Arc::new(config) })
}
