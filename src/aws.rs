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
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .load()
        .await
}
