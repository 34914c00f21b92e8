//! `/networks`: create, list, inspect, remove, prune, connect and disconnect (Docker's
//! network API, bridge driver only). Bodies are decoded here into bollard's models, as dockerd
//! reads them (Go's words for a wrong type); the engine gets them typed.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard_stubs::models::{
    IpamConfig, NetworkConnectRequest, NetworkCreateRequest, NetworkCreateResponse,
    NetworkDisconnectRequest, NetworkInspect, NetworkPruneResponse,
};
use serde::{Deserialize, Serialize};

use crate::body::read_json;
use crate::query::Query;
use crate::{blocking, ApiError, BackendResult, SharedBackend};
use berth_core::filters::Filters;

/// What the network endpoints need from the engine (blocking calls).
pub trait NetworkBackend {
    /// A checked create request in; the new network's ID out.
    fn create_network(&self, req: NetworkCreateRequest) -> BackendResult<NetworkCreateResponse>;
    /// `GET /networks`: every network that passes `filters`, in the form inspect has
    /// (berth lists the containers too).
    fn list_networks(&self, filters: Filters) -> BackendResult<Vec<NetworkResource>>;
    /// A network by name, ID or ID prefix.
    fn inspect_network(&self, name: &str) -> BackendResult<NetworkResource>;
    fn remove_network(&self, name: &str) -> BackendResult<()>;
    fn prune_networks(&self, filters: Filters) -> BackendResult<NetworkPruneResponse>;
    /// `Container` is never missing (an empty string when the client sent none).
    fn connect_network(&self, name: &str, req: NetworkConnectRequest) -> BackendResult<()>;
    /// `Container` is never missing (an empty string when the client sent none).
    fn disconnect_network(&self, name: &str, req: NetworkDisconnectRequest) -> BackendResult<()>;
}

/// A network as `GET /networks` and `GET /networks/{id}` send it: bollard's `NetworkInspect`
/// for everything but `IPAM`, which is beside it because bollard's `Ipam` leaves out an
/// `Options` of `null` (what Docker and berth send for `host` and `none`). `network.ipam` stays
/// `None`: it would be a second `IPAM` key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkResource {
    #[serde(flatten)]
    pub network: NetworkInspect,
    #[serde(rename = "IPAM")]
    pub ipam: NetworkIpam,
}

/// A network's `IPAM` with every field always sent, `Options` as `null` when `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkIpam {
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "Options")]
    pub options: Option<HashMap<String, String>>,
    #[serde(rename = "Config")]
    pub config: Vec<IpamConfig>,
}

/// `POST /networks/create`'s body, as dockerd decodes its `network.CreateRequest`; a missing
/// `Name` is empty, for the engine to refuse with Docker's words.
pub fn decode_create(body: &[u8]) -> Result<NetworkCreateRequest, ApiError> {
    read_json(body, "network.CreateRequest", &["Name"])
}

/// `POST /networks/{id}/connect`'s body (dockerd's `network.ConnectOptions`).
pub fn decode_connect(body: &[u8]) -> Result<NetworkConnectRequest, ApiError> {
    read_json(body, "network.ConnectOptions", &["Container"])
}

/// `POST /networks/{id}/disconnect`'s body (dockerd's `network.DisconnectOptions`).
pub fn decode_disconnect(body: &[u8]) -> Result<NetworkDisconnectRequest, ApiError> {
    read_json(body, "network.DisconnectOptions", &["Container"])
}

async fn create(
    State(b): State<SharedBackend>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<NetworkCreateResponse>), ApiError> {
    let req = decode_create(&body)?;
    let v = blocking(move || b.create_network(req)).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

async fn list(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<NetworkResource>>, ApiError> {
    let filters = Filters::from_query(&Query::parse(raw.as_deref()))?;
    Ok(Json(blocking(move || b.list_networks(filters)).await?))
}

async fn inspect(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
) -> Result<Json<NetworkResource>, ApiError> {
    Ok(Json(blocking(move || b.inspect_network(&name)).await?))
}

async fn remove(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    blocking(move || b.remove_network(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<NetworkPruneResponse>, ApiError> {
    let filters = Filters::from_query(&Query::parse(raw.as_deref()))?;
    Ok(Json(blocking(move || b.prune_networks(filters)).await?))
}

async fn connect(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let req = decode_connect(&body)?;
    blocking(move || b.connect_network(&name, req)).await?;
    Ok(StatusCode::OK)
}

async fn disconnect(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let req = decode_disconnect(&body)?;
    blocking(move || b.disconnect_network(&name, req)).await?;
    Ok(StatusCode::OK)
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{name}", get(inspect).delete(remove))
        .route("/networks/{name}/connect", post(connect))
        .route("/networks/{name}/disconnect", post(disconnect))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_body_decodes_typed() {
        let req = decode_create(
            br#"{"Name":"app","Driver":"bridge","Internal":true,"Labels":{"a":"1"},
                 "Options":{"com.docker.network.driver.mtu":"1400"},
                 "IPAM":{"Driver":"default","Config":[{"Subnet":"10.9.0.0/24","Gateway":"10.9.0.1"}]},
                 "CheckDuplicate":true,"ConfigFrom":null}"#,
        )
        .unwrap();
        assert_eq!(req.name, "app");
        assert_eq!(req.driver.as_deref(), Some("bridge"));
        assert_eq!(req.internal, Some(true));
        assert_eq!(req.labels.unwrap()["a"], "1");
        assert_eq!(
            req.options.unwrap()["com.docker.network.driver.mtu"],
            "1400"
        );
        let config = &req.ipam.unwrap().config.unwrap()[0];
        assert_eq!(config.subnet.as_deref(), Some("10.9.0.0/24"));
        assert_eq!(config.gateway.as_deref(), Some("10.9.0.1"));
        // No name at all is the engine's to refuse ("network name is required").
        assert_eq!(decode_create(b"").unwrap().name, "");
        assert_eq!(decode_create(br#"{"Name":null}"#).unwrap().name, "");
    }

    #[test]
    fn a_create_body_of_wrong_types_gets_dockerds_400() {
        let cases: [(&[u8], &str); 5] = [
            (br#"{"Name":5}"#, "number into Go struct field CreateRequest.Name of type string"),
            (br#"{"Name":"n","Internal":"yes"}"#, "string into Go struct field CreateRequest.Internal of type bool"),
            (br#"{"Name":"n","Labels":"x"}"#, "string into Go struct field CreateRequest.Labels of type map[string]string"),
            (br#"{"Name":"n","Options":{"com.docker.network.driver.mtu":1400}}"#,
             "number into Go struct field CreateRequest.Options.com.docker.network.driver.mtu of type string"),
            (br#"["n"]"#, "array into Go value of type network.CreateRequest"),
        ];
        for (body, want) in cases {
            let e = decode_create(body).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
            assert_eq!(
                e.message,
                format!("invalid JSON: json: cannot unmarshal {want}")
            );
        }
    }

    #[test]
    fn connect_and_disconnect_bodies_decode_typed() {
        let req = decode_connect(
            br#"{"Container":"web","EndpointConfig":{"Aliases":["a","b"],
                 "IPAMConfig":{"IPv4Address":"10.9.0.7"},"Links":null,"GwPriority":0}}"#,
        )
        .unwrap();
        assert_eq!(req.container, "web");
        let ep = req.endpoint_config.unwrap();
        assert_eq!(ep.aliases.unwrap(), ["a", "b"]);
        assert_eq!(
            ep.ipam_config.unwrap().ipv4_address.as_deref(),
            Some("10.9.0.7")
        );
        assert_eq!(decode_connect(b"{}").unwrap().container, "");
        let req = decode_disconnect(br#"{"Container":"web","Force":true}"#).unwrap();
        assert_eq!((req.container.as_str(), req.force), ("web", Some(true)));
        assert_eq!(decode_disconnect(b"").unwrap().container, "");
    }

    #[test]
    fn connect_and_disconnect_bodies_of_wrong_types_get_dockerds_400() {
        let e = decode_connect(br#"{"Container":1}"#).unwrap_err();
        assert_eq!(
            e.message,
            "invalid JSON: json: cannot unmarshal number into Go struct field ConnectOptions.Container of type string"
        );
        let e =
            decode_connect(br#"{"Container":"c","EndpointConfig":{"Aliases":"a"}}"#).unwrap_err();
        assert_eq!(
            e.message,
            "invalid JSON: json: cannot unmarshal string into Go struct field ConnectOptions.EndpointConfig.Aliases of type []string"
        );
        let e = decode_disconnect(br#"{"Container":"c","Force":"yes"}"#).unwrap_err();
        assert_eq!(
            e.message,
            "invalid JSON: json: cannot unmarshal string into Go struct field DisconnectOptions.Force of type bool"
        );
    }

    #[test]
    fn a_network_is_sent_field_for_field() {
        let n = NetworkResource {
            network: NetworkInspect {
                name: Some("host".into()),
                containers: Some(HashMap::new()),
                ..Default::default()
            },
            ipam: NetworkIpam {
                driver: "default".into(),
                options: None,
                config: vec![],
            },
        };
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Name": "host", "Containers": {},
                "IPAM": {"Driver": "default", "Options": null, "Config": []}})
        );
        assert_eq!(serde_json::from_value::<NetworkResource>(v).unwrap(), n);
    }
}
