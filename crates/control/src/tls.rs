//! HTTPS for the admin (rustls, TLS 1.2 and 1.3, ring): a certificate and key from the config
//! file, or a self-signed pair made at the first start (rcgen) and kept beside the config, the
//! key readable by its owner alone. Its SHA-256 fingerprint is printed at start, so the first
//! browser visit can be checked against it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// The admin's TLS set-up, ready to serve.
pub struct Tls {
    /// For [`crate::http::Options::tls`].
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the certificate (DER), as `AB:CD:...`.
    pub fingerprint: String,
    /// The certificate file.
    pub cert_path: PathBuf,
    /// True when this start made the certificate.
    pub created: bool,
}

/// `AB:CD:...`: SHA-256 of a certificate's DER bytes.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// A rustls server configuration from PEM text: the certificate chain and its private key.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<(Arc<ServerConfig>, String), String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading the certificate: {e}"))?;
    let first = certs.first().ok_or("the certificate file holds no certificate")?;
    let print = fingerprint(first);
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("reading the private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), print))
}

/// A new self-signed certificate for `names` (IP addresses or DNS names): PEM certificate
/// and PEM private key (ECDSA P-256).
pub fn self_signed(names: &[String]) -> Result<(String, String), String> {
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "natpass admin");
    let key = rcgen::KeyPair::generate().map_err(|e| format!("making a key: {e}"))?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Loads `cert` and `key`; when `create` and neither exists, first makes a self-signed pair
/// for `names` and saves it there (both files 0600, written atomically).
pub fn load_or_create(cert: &Path, key: &Path, create: bool, names: &[String]) -> Result<Tls, String> {
    let mut created = false;
    if create && !cert.exists() && !key.exists() {
        let (cert_pem, key_pem) = self_signed(names)?;
        crate::store::save_atomically(key, &key_pem).map_err(|e| e.to_string())?;
        crate::store::save_atomically(cert, &cert_pem).map_err(|e| e.to_string())?;
        created = true;
    }
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let (config, fingerprint) = server_config(&read(cert)?, &read(key)?)
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
    Ok(Tls { config, fingerprint, cert_path: cert.to_path_buf(), created })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_self_signed_pair_is_made_once_and_loaded_after() {
        let dir = std::env::temp_dir().join(format!("natpass-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("admin.crt"), dir.join("admin.key"));
        let names = vec!["192.0.2.1".to_string(), "router.lan".to_string()];
        let first = load_or_create(&cert, &key, true, &names).unwrap();
        assert!(first.created);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let again = load_or_create(&cert, &key, true, &names).unwrap();
        assert!(!again.created);
        assert_eq!(again.fingerprint, first.fingerprint);
        std::fs::write(&key, "not a key").unwrap();
        assert!(load_or_create(&cert, &key, true, &names).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
