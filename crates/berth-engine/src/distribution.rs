//! Registries for the engine: pull, push, login checks and remote inspection, through
//! berth-registry's client. The API calls these on its blocking pool; the client is async, so
//! each call runs it to completion on the daemon's runtime.

use std::collections::BTreeMap;

use crate::error::EngineError;
use berth_api::distribution::{AuthRequest, DistributionBackend, PullRequest};
use berth_core::Reference;
use berth_registry::client::{
    parse_platform, progress::to_json, reference_for_pull, AuthConfig, PullOptions, PushOptions,
};
use bollard_stubs::models::{AuthResponse, DistributionInspect, OciDescriptor, OciPlatform};
use tokio::sync::mpsc::UnboundedSender;

use crate::images::ImageAction;
use crate::Engine;
use berth_api::BackendResult;

fn api_err(e: berth_registry::client::RegistryError) -> EngineError {
    EngineError::from_kind(&e)
}

fn auth_of(header: Option<&str>) -> Result<Option<AuthConfig>, EngineError> {
    header
        .map(AuthConfig::from_header)
        .transpose()
        .map_err(api_err)
}

/// Whether a pull's `fromImage` names a tag or digest itself (`busybox:1`, `x@sha256:…`).
fn names_a_version(from_image: &str) -> bool {
    let last = from_image.rsplit('/').next().unwrap_or(from_image);
    last.contains(':') || from_image.contains('@')
}

impl Engine {
    fn runtime_handle(&self) -> Result<tokio::runtime::Handle, EngineError> {
        tokio::runtime::Handle::try_current()
            .map_err(|_| EngineError::internal("registry operations need the daemon's runtime"))
    }

    fn pull_one(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        out: &UnboundedSender<String>,
    ) -> Result<(), EngineError> {
        let handle = self.runtime_handle()?;
        let sender = out.clone();
        let pulled = handle
            .block_on(self.registry.pull(&self.images, reference, opts, move |p| {
                let _ = sender.send(to_json(&p));
            }))
            .map_err(api_err)?;
        self.image_event(
            ImageAction::Pull,
            &pulled.config.to_string(),
            BTreeMap::from([("name".to_owned(), reference.familiar())]),
        );
        Ok(())
    }
}

impl Engine {
    pub fn pull_image(
        &self,
        req: PullRequest,
        out: UnboundedSender<String>,
    ) -> Result<(), EngineError> {
        // Refused before any request: a malformed name or platform.
        let reference = reference_for_pull(&req.from_image, req.tag.as_deref()).map_err(api_err)?;
        let platform = req
            .platform
            .as_deref()
            .map(parse_platform)
            .transpose()
            .map_err(api_err)?;
        let opts = PullOptions {
            platform,
            auth: auth_of(req.auth.as_deref())?,
        };
        let all_tags = req.tag.as_deref().is_none_or(|t| t.trim().is_empty())
            && !names_a_version(&req.from_image);
        if !all_tags {
            return self.pull_one(&reference, &opts, &out);
        }
        // No tag asked for: every tag of the repository, as Docker does.
        let handle = self.runtime_handle()?;
        let tags = handle
            .block_on(self.registry.list_tags(&reference, opts.auth.as_ref()))
            .map_err(api_err)?;
        for tag in tags {
            let r = reference_for_pull(&reference.name(), Some(&tag)).map_err(api_err)?;
            self.pull_one(&r, &opts, &out)?;
        }
        Ok(())
    }

    pub fn push_image(
        &self,
        name: &str,
        tag: Option<&str>,
        auth: Option<&str>,
        out: UnboundedSender<String>,
    ) -> Result<(), EngineError> {
        let wanted = match tag {
            Some(t) => format!("{name}:{t}"),
            None => name.to_owned(),
        };
        let reference: Reference = wanted
            .parse()
            .map_err(|e: berth_core::ReferenceError| EngineError::invalid(e.to_string()))?;
        let view = self.images.view(&reference.to_string()).map_err(|_| {
            EngineError::not_found(format!(
                "An image does not exist locally with the tag: {}",
                reference.familiar_name()
            ))
        })?;
        let opts = PushOptions {
            auth: auth_of(auth)?,
        };
        let handle = self.runtime_handle()?;
        let sender = out.clone();
        handle
            .block_on(self.registry.push(
                &self.images,
                &reference,
                &view.manifest,
                &opts,
                move |p| {
                    let _ = sender.send(to_json(&p));
                },
            ))
            .map_err(api_err)?;
        self.image_event(
            ImageAction::Push,
            &view.id.to_string(),
            BTreeMap::from([("name".to_owned(), reference.familiar())]),
        );
        Ok(())
    }

    pub fn check_auth(&self, req: AuthRequest) -> Result<AuthResponse, EngineError> {
        let auth = AuthConfig {
            username: req.username,
            password: req.password,
            auth: req.auth,
            email: req.email,
            server_address: req.serveraddress,
            identity_token: req.identitytoken,
            registry_token: req.registrytoken,
        };
        let server = auth.server_address.clone();
        let handle = self.runtime_handle()?;
        let outcome = handle
            .block_on(self.registry.check_login(&server, &auth))
            .map_err(api_err)?;
        Ok(AuthResponse {
            status: outcome.status,
            identity_token: Some(outcome.identity_token.unwrap_or_default()),
        })
    }

    /// `docker search TERM`: the registry's v1 search, as Docker asks it.
    pub fn search_images(
        &self,
        term: &str,
        limit: u32,
    ) -> Result<Vec<bollard_stubs::models::ImageSearchResponseItem>, EngineError> {
        let handle = self.runtime_handle()?;
        let found = handle
            .block_on(self.registry.search(term, limit))
            .map_err(api_err)?;
        Ok(found
            .into_iter()
            .map(|r| bollard_stubs::models::ImageSearchResponseItem {
                name: Some(r.name),
                description: Some(r.description),
                star_count: Some(r.star_count),
                is_official: Some(r.is_official),
                is_automated: Some(r.is_automated),
            })
            .collect())
    }

    pub fn distribution_inspect(
        &self,
        name: &str,
        auth: Option<&str>,
    ) -> Result<DistributionInspect, EngineError> {
        let reference: Reference = name
            .parse()
            .map_err(|e: berth_core::ReferenceError| EngineError::invalid(e.to_string()))?;
        let auth = auth_of(auth)?;
        let handle = self.runtime_handle()?;
        let found = handle
            .block_on(
                self.registry
                    .distribution_inspect(&reference, auth.as_ref()),
            )
            .map_err(api_err)?;
        let platform = |p: &berth_image::oci::Platform| OciPlatform {
            architecture: Some(p.architecture.clone()),
            os: Some(p.os.clone()),
            variant: p.variant.clone(),
            ..Default::default()
        };
        let d = &found.descriptor;
        Ok(DistributionInspect {
            descriptor: OciDescriptor {
                media_type: Some(d.media_type.clone()),
                digest: Some(d.digest.to_string()),
                size: Some(d.size as i64),
                annotations: Some(d.annotations.clone().into_iter().collect())
                    .filter(|a: &std::collections::HashMap<_, _>| !a.is_empty()),
                platform: d.platform.as_ref().map(platform),
                ..Default::default()
            },
            platforms: found.platforms.iter().map(platform).collect(),
        })
    }
}

impl DistributionBackend for Engine {
    fn pull_image(&self, req: PullRequest, out: UnboundedSender<String>) -> BackendResult<()> {
        Ok(Engine::pull_image(self, req, out)?)
    }
    fn push_image(
        &self,
        name: &str,
        tag: Option<&str>,
        auth: Option<&str>,
        out: UnboundedSender<String>,
    ) -> BackendResult<()> {
        Ok(Engine::push_image(self, name, tag, auth, out)?)
    }
    fn check_auth(&self, body: AuthRequest) -> BackendResult<AuthResponse> {
        Ok(Engine::check_auth(self, body)?)
    }
    fn distribution_inspect(
        &self,
        name: &str,
        auth: Option<&str>,
    ) -> BackendResult<DistributionInspect> {
        Ok(Engine::distribution_inspect(self, name, auth)?)
    }
    fn search_images(
        &self,
        term: &str,
        limit: u32,
    ) -> BackendResult<Vec<bollard_stubs::models::ImageSearchResponseItem>> {
        Ok(Engine::search_images(self, term, limit)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_in_the_name_is_noticed() {
        assert!(names_a_version("busybox:1.36"));
        assert!(names_a_version("localhost:5000/bb:1"));
        assert!(!names_a_version("localhost:5000/bb"));
        assert!(names_a_version("bb@sha256:00"));
        assert!(!names_a_version("library/busybox"));
    }
}
