//! The AWS configuration every client (S3, Secrets Manager) starts from, built in one place
//! so that both find credentials and their region the same way.

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The standard chain (environment keys, `AWS_PROFILE` including SSO, the ECS task role,
/// instance metadata), in `region` if one is given, else the chain's own region, else
/// us-east-1.
pub async fn config(region: Option<String>) -> SdkConfig {
    let region = RegionProviderChain::first_try(region.map(Region::new))
        .or_default_provider()
        .or_else(Region::from_static("us-east-1"));
    let cfg = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .load()
        .await;
    // The SDK's own logs are kept quiet (they name key ids); say here, in the loader's words,
    // where the credentials come from. Once per process: S3 and Secrets Manager share it.
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        tracing::info!(
            "AWS credentials: {}",
            credential_source(&|k| std::env::var(k).ok())
        )
    });
    cfg
}

/// The first source of the standard chain that is configured, as the chain itself tries
/// them: environment keys, a profile, web identity, the ECS task role, instance metadata.
/// Names and never values (no key id, no token, no session name).
pub fn credential_source(var: &dyn Fn(&str) -> Option<String>) -> String {
    let set = |k: &str| var(k).is_some_and(|v| !v.is_empty());
    if set("AWS_ACCESS_KEY_ID") {
        return "environment keys (AWS_ACCESS_KEY_ID)".into();
    }
    if let Some(p) = var("AWS_PROFILE").filter(|p| !p.is_empty()) {
        return format!(
            "profile {p} (AWS_PROFILE; an SSO profile needs `aws sso login --profile {p}`)"
        );
    }
    if set("AWS_WEB_IDENTITY_TOKEN_FILE") {
        return "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)".into();
    }
    if set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || set("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        return "the ECS task role".into();
    }
    "the default profile if ~/.aws has one, else instance metadata (EC2 role)".into()
}

/// What to do about credentials that are missing or expired, for the source in use.
pub fn credential_hint(var: &dyn Fn(&str) -> Option<String>) -> String {
    match var("AWS_PROFILE").filter(|p| !p.is_empty()) {
        Some(p) => format!(
            "AWS_PROFILE is {p}: if it is an SSO profile, its session may have expired: run \
             `aws sso login --profile {p}`"
        ),
        None => "set AWS_PROFILE (an SSO profile: then `aws sso login --profile NAME`), \
                 environment keys, or run with a task role"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_source_is_named_in_the_chains_order_and_never_with_a_value() {
        let keys = [
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID"),
            ("AWS_PROFILE", "dev"),
        ];
        let s = credential_source(&env(&keys));
        assert!(s.starts_with("environment keys"), "{s}");
        assert!(!s.contains("AKIA"), "{s}");
        assert!(credential_source(&env(&[("AWS_PROFILE", "dev")])).starts_with("profile dev"));
        assert_eq!(
            credential_source(&env(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x")])),
            "the ECS task role"
        );
        assert!(credential_source(&env(&[])).contains("instance metadata"));
    }

    #[test]
    fn the_hint_does_not_ask_for_a_profile_that_is_set() {
        let h = credential_hint(&env(&[("AWS_PROFILE", "dev")]));
        assert!(
            h.contains("aws sso login --profile dev") && !h.contains("set AWS_PROFILE"),
            "{h}"
        );
        assert!(credential_hint(&env(&[])).contains("set AWS_PROFILE"));
    }
}
