//! `/volumes`: create, list, inspect, remove, prune; and berth's own export and import (a
//! tar of a volume's content, for backups — Docker has no such endpoint). The create body is
//! decoded here into bollard's `VolumeCreateRequest` (Docker's `VolumeCreateOptions`), as
//! dockerd reads it; the engine gets it typed.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard_stubs::models::{Volume, VolumeCreateRequest, VolumeListResponse, VolumePruneResponse};

use crate::body::read_json;
use crate::images::{stream_writer, with_upload, ExportWriter};
use crate::query::Query;
use crate::{blocking, ApiError, BackendResult, SharedBackend};
use berth_core::filters::Filters;

/// What the volume endpoints need from the engine (blocking calls).
pub trait VolumeBackend {
    /// Docker's VolumeCreateOptions (bollard's `VolumeCreateRequest`) in, the volume out (an
    /// existing one of that name as it is).
    fn create_volume(&self, req: VolumeCreateRequest) -> BackendResult<Volume>;
    fn list_volumes(&self, filters: Filters) -> BackendResult<VolumeListResponse>;
    fn inspect_volume(&self, name: &str) -> BackendResult<Volume>;
    fn remove_volume(&self, name: &str, force: bool) -> BackendResult<()>;
    fn prune_volumes(&self, filters: Filters) -> BackendResult<VolumePruneResponse>;
    /// A tar of the volume's content.
    fn export_volume(&self, name: &str) -> BackendResult<ExportWriter>;
    /// Fills an empty volume (created if missing) from a tar.
    fn import_volume(&self, name: &str, tar: &std::path::Path) -> BackendResult<()>;
}

/// `POST /volumes/create`'s body, as dockerd decodes its `volume.CreateOptions`.
pub fn decode_create(body: &[u8]) -> Result<VolumeCreateRequest, ApiError> {
    read_json(body, "volume.CreateOptions", &[])
}

async fn create(
    State(b): State<SharedBackend>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Volume>), ApiError> {
    let req = decode_create(&body)?;
    let v = blocking(move || b.create_volume(req)).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

async fn list(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<VolumeListResponse>, ApiError> {
    let filters = Filters::from_query(&Query::parse(raw.as_deref()))?;
    Ok(Json(blocking(move || b.list_volumes(filters)).await?))
}

async fn inspect(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
) -> Result<Json<Volume>, ApiError> {
    Ok(Json(blocking(move || b.inspect_volume(&name)).await?))
}

async fn remove(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let force = Query::parse(raw.as_deref()).flag("force", false);
    blocking(move || b.remove_volume(&name, force)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<VolumePruneResponse>, ApiError> {
    let filters = Filters::from_query(&Query::parse(raw.as_deref()))?;
    Ok(Json(blocking(move || b.prune_volumes(filters)).await?))
}

async fn export(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let writer = blocking(move || b.export_volume(&name)).await?;
    Ok(stream_writer(writer))
}

async fn import(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    with_upload(&b, body, move |b, path| Ok(b.import_volume(&name, path)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
        .route("/volumes/{name}/export", get(export))
        .route("/volumes/{name}/import", axum::routing::put(import))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_body_decodes_typed() {
        let req = decode_create(
            br#"{"Name":"data","Driver":"local","Labels":{"l":"v"},
                 "DriverOpts":{"type":"tmpfs","device":"tmpfs","o":"size=1m"}}"#,
        )
        .unwrap();
        assert_eq!(req.name.as_deref(), Some("data"));
        assert_eq!(req.driver.as_deref(), Some("local"));
        assert_eq!(req.labels.unwrap()["l"], "v");
        assert_eq!(req.driver_opts.unwrap()["o"], "size=1m");
        // No body, or no name: an anonymous volume.
        for body in [&b""[..], b"{}", b"null", br#"{"Name":null}"#] {
            assert_eq!(decode_create(body).unwrap(), VolumeCreateRequest::default());
        }
    }

    #[test]
    fn a_create_body_of_wrong_types_gets_dockerds_400() {
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"Name":3}"#,
                "number into Go struct field CreateOptions.Name of type string",
            ),
            (
                br#"{"Labels":"x"}"#,
                "string into Go struct field CreateOptions.Labels of type map[string]string",
            ),
            (
                br#"{"DriverOpts":{"o":true}}"#,
                "bool into Go struct field CreateOptions.DriverOpts.o of type string",
            ),
            (
                b"\"v\"",
                "string into Go value of type volume.CreateOptions",
            ),
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
}
