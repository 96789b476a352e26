//! TLS to PostgreSQL with libpq's `sslmode` meanings, on rustls.
//!
//! tokio-postgres only knows disable / prefer / require and leaves certificate checks to
//! the connector, so the verification each mode promises is decided here:
//!
//! | mode | encrypts | checks the chain | checks the host name |
//! |---|---|---|---|
//! | disable | never | – | – |
//! | allow | only if the server insists | no | no |
//! | prefer (default) | if the server offers | no | no |
//! | require | always | only with `--sslrootcert` (as libpq) | no |
//! | verify-ca | always | yes | no |
//! | verify-full | always | yes | yes |

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn from_name(s: &str) -> Option<SslMode> {
        Some(match s.to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" | "verify_ca" => SslMode::VerifyCa,
            "verify-full" | "verify_full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads a PEM bundle (e.g. the RDS global bundle) into a root store.
fn roots(path: &Path) -> Result<RootCertStore, Error> {
    use rustls_pki_types::pem::PemObject;
    let shown = path.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Config(format!("--sslrootcert {shown}: cannot read it: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            Error::Config(format!(
                "--sslrootcert {shown}: not a PEM certificate bundle: {e}"
            ))
        })?;
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(Error::Config(format!(
            "--sslrootcert {shown}: no usable CA certificate in it"
        )));
    }
    Ok(store)
}

/// The rustls client configuration a mode needs.
pub fn client_config(mode: SslMode, rootcert: Option<&Path>) -> Result<ClientConfig, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?;
    let verify_chain = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull)
        || (mode == SslMode::Require && rootcert.is_some());
    let config = if verify_chain {
        let path = rootcert.ok_or_else(|| {
            Error::Config(format!(
                "sslmode={mode} needs a CA bundle to check the server against: give --sslrootcert \
                 (for RDS, the global bundle from AWS)"
            ))
        })?;
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots(path)?), provider())
                .build()
                .map_err(|e| Error::Config(format!("--sslrootcert {}: {e}", path.display())))?;
        if mode == SslMode::VerifyFull {
            builder
                .with_root_certificates(roots(path)?)
                .with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                .with_no_client_auth()
        }
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider())))
            .with_no_client_auth()
    };
    Ok(config)
}

/// verify-ca: the chain must lead to a trusted root, whatever name the certificate carries.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// prefer / require without a CA: encryption without authentication, as libpq does. The
/// handshake signatures are still checked, so the session key belongs to the certificate.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        for m in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            assert_eq!(SslMode::from_name(m).unwrap().to_string(), m);
        }
        assert_eq!(SslMode::from_name("VERIFY-FULL"), Some(SslMode::VerifyFull));
        assert_eq!(SslMode::from_name("bogus"), None);
    }

    #[test]
    fn verifying_modes_need_a_ca() {
        for m in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let e = client_config(m, None).unwrap_err();
            assert!(e.to_string().contains("--sslrootcert"), "{e}");
            assert_eq!(e.exit().code(), 78);
        }
        assert!(client_config(SslMode::Require, None).is_ok());
        let e =
            client_config(SslMode::VerifyFull, Some(Path::new("/nonexistent.pem"))).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }
}
