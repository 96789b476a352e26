//! Database credentials from AWS Secrets Manager, in RDS's standard JSON shape.
//!
//! The secret overrides the individual `CUSIP_DB_*` settings for every field it has, as
//! the old service did. Nothing of its value is ever printed: errors name the secret's ARN
//! and what is wrong with its shape, never its content.

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use serde::Deserialize;

use crate::db::DbConfig;
use crate::error::{chain, Error};

/// RDS's secret shape. `port` is a number in RDS-made secrets and often a string in
/// hand-made ones; both are accepted.
#[derive(Deserialize)]
struct RdsSecret {
    host: Option<String>,
    port: Option<serde_json::Value>,
    dbname: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The region in `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`, if it is an ARN.
fn arn_region(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    (parts.len() > 4 && parts[0] == "arn" && !parts[3].is_empty()).then(|| parts[3].to_string())
}

/// Fetches the secret and applies it to `cfg`.
pub async fn apply(cfg: &mut DbConfig, arn: &str, region: Option<String>) -> Result<(), Error> {
    let shared = crate::aws::config(region.or_else(|| arn_region(arn))).await;
    let client = aws_sdk_secretsmanager::Client::new(&shared);
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| failure(arn, &e))?;
    let text = out.secret_string().ok_or_else(|| {
        Error::Config(format!(
            "secret {arn} has no SecretString (a binary secret cannot hold database credentials)"
        ))
    })?;
    let s: RdsSecret = serde_json::from_str(text).map_err(|e| {
        // serde's message can quote the input; give only the position.
        Error::Config(format!(
            "secret {arn} is not JSON of the RDS shape {{host, port, dbname, username, password}} \
             (parse error at line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if let Some(h) = s.host {
        cfg.host = h;
    }
    match s.port {
        None => {}
        Some(serde_json::Value::Number(n)) if n.as_u64().is_some_and(|p| p > 0 && p < 65536) => {
            cfg.port = n.as_u64().unwrap_or(5432) as u16;
        }
        Some(serde_json::Value::String(p)) if p.parse::<u16>().is_ok() => {
            cfg.port = p.parse().unwrap_or(5432);
        }
        Some(_) => {
            return Err(Error::Config(format!(
                "secret {arn}: \"port\" is not a port number"
            )))
        }
    }
    if let Some(d) = s.dbname {
        cfg.dbname = d;
    }
    if let Some(u) = s.username {
        cfg.user = u;
    }
    if s.password.is_some() {
        cfg.password = s.password;
    }
    tracing::info!(secret = arn, target = %cfg.display_target(), "database settings from Secrets Manager");
    Ok(())
}

fn failure<E>(
    arn: &str,
    e: &SdkError<E, aws_sdk_secretsmanager::config::http::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e.code() {
        Some("ResourceNotFoundException") => Error::Config(format!("secret {arn} does not exist (CUSIP_DB_SECRET_ARN)")),
        Some("AccessDeniedException" | "UnrecognizedClientException" | "InvalidSignatureException") => Error::Denied(format!(
                "reading secret {arn}: access denied ({}); the task role needs secretsmanager:GetSecretValue \
                 on it, and kms:Decrypt on its key if it uses a customer-managed key",
                e.code().unwrap_or("")
            )),
        Some("DecryptionFailure") => Error::Denied(format!("reading secret {arn}: cannot decrypt it (kms:Decrypt on its key is needed)")),
        Some(code) => Error::Config(format!("reading secret {arn}: {code}: {}", e.message().unwrap_or(""))),
        None => Error::Transient(format!("reading secret {arn}: Secrets Manager unreachable: {}", chain(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_from_arn() {
        assert_eq!(
            arn_region("arn:aws:secretsmanager:eu-west-2:222222222222:secret:cusip/db-AbCdEf")
                .as_deref(),
            Some("eu-west-2")
        );
        assert_eq!(arn_region("cusip/db"), None);
    }
}
