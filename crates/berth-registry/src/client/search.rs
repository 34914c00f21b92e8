//! `docker search`: a registry's v1 search API (`GET /v1/search?q=…&n=…`), which Docker Hub
//! serves at `index.docker.io` and other registries may. A term that starts with a registry
//! (`localhost:5000/app`, `reg.example.com/app`) searches that registry for the rest.

use serde::Deserialize;

use super::endpoint::DOCKER_HUB;
use super::error::{RegistryError, Result};
use super::Client;

/// One hit, in the v1 API's words.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SearchResult {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: i64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// The registry a search term names, and the query for it.
pub fn split_term(term: &str) -> (String, String) {
    match term.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DOCKER_HUB.to_owned(), term.to_owned()),
    }
}

impl Client {
    /// Searches for `term`, at most `limit` results.
    pub async fn search(&self, term: &str, limit: u32) -> Result<Vec<SearchResult>> {
        let (registry, query) = split_term(term);
        let base = if registry == DOCKER_HUB {
            "https://index.docker.io".to_owned()
        } else {
            self.endpoint(&registry).base
        };
        let url = format!("{base}/v1/search");
        let http = |e: reqwest::Error| RegistryError::Http {
            method: "Get".to_owned(),
            url: url.clone(),
            message: e.to_string(),
        };
        let resp = self
            .inner
            .http
            .get(&url)
            .query(&[("q", query.as_str()), ("n", &limit.to_string())])
            .send()
            .await
            .map_err(http)?;
        let status = resp.status();
        if !status.is_success() {
            // A registry without the v1 search API (most v2-only ones) answers 404.
            return Err(RegistryError::Http {
                method: "Get".to_owned(),
                url,
                message: format!("Unexpected status code {}", status.as_u16()),
            });
        }
        let bytes = resp.bytes().await.map_err(http)?;
        let answer: Answer = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Http {
            method: "Get".to_owned(),
            url: url.clone(),
            message: format!("invalid search answer: {e}"),
        })?;
        let mut results = answer.results;
        results.truncate(limit as usize);
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_may_name_its_registry() {
        assert_eq!(
            split_term("busybox"),
            ("docker.io".into(), "busybox".into())
        );
        assert_eq!(
            split_term("library/bb"),
            ("docker.io".into(), "library/bb".into())
        );
        assert_eq!(
            split_term("localhost:5000/app"),
            ("localhost:5000".into(), "app".into())
        );
        assert_eq!(
            split_term("reg.example.com/team/app"),
            ("reg.example.com".into(), "team/app".into())
        );
    }
}
