//! The config hashes Docker Compose v2 writes as `com.docker.compose.config-hash`: the
//! lowercase hex SHA-256 of Go's JSON encoding of the service (build, pull policy, scale,
//! depends_on, profiles and deploy's replica count left out, so changing only those does
//! not recreate anything), of a network, and of a volume (driver `local` by default). The
//! same bytes as v2's are what lets either tool take over the other's project.

use sha2::{Digest, Sha256};

use crate::model::{go_json, Network, Service, Volume};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn service_hash(service: &Service) -> String {
    let mut s = service.clone();
    s.build = None;
    s.pull_policy.clear();
    s.scale = None;
    s.depends_on.clear();
    s.profiles.clear();
    if let Some(d) = s.deploy.as_mut() {
        d.replicas = None;
    }
    sha256_hex(go_json(&s).as_bytes())
}

pub fn network_hash(network: &Network) -> String {
    sha256_hex(go_json(network).as_bytes())
}

pub fn volume_hash(volume: &Volume) -> String {
    let mut v = volume.clone();
    if v.driver.is_empty() {
        v.driver = "local".into();
    }
    sha256_hex(go_json(&v).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Healthcheck, Network};

    #[test]
    fn the_hashes_v2_computes() {
        // Test vectors taken from Docker Compose v2.40.3 (`config --hash`).
        let svc = Service {
            image: "postgres".into(),
            healthcheck: Some(Healthcheck {
                test: vec!["CMD".into(), "pg_isready".into()],
                ..Default::default()
            }),
            networks: [("default".to_owned(), None)].into(),
            ..Default::default()
        };
        assert_eq!(
            service_hash(&svc),
            "f7602977d9fb3f4b80ed01c83a9866983440752eea4bf6280cc5a127516b2e6c"
        );
        let net = Network {
            name: "t1_default".into(),
            ..Default::default()
        };
        assert_eq!(
            network_hash(&net),
            "e15cd8c28a8f2cf5e6247f0bf3c839cb0be1584f4301e697ed912d92a8c4ffe9"
        );
        let vol = Volume {
            name: "t1_data".into(),
            ..Default::default()
        };
        assert_eq!(
            volume_hash(&vol),
            "ea9a4d10b6e06ca5d52e18bc909347b573371791dc9def4ab0562ad48afa6941"
        );
    }
}
