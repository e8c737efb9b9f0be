//! The OpenAPI 3.1 description of the `/v1` API, generated from the handlers' annotations.
//! `docs/openapi.json` is the checked-in copy; a test keeps it identical to what the code serves
//! (regenerate with `auditex openapi > docs/openapi.json`).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api;
use super::error::{Problem, ProblemField};

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Auditex API",
        description = "Append AI decision records to a tenant's verifiable ledger and fetch proofs. Authenticate with `Authorization: Bearer atx_…` (an API key of one tenant; its role decides what it may do). Errors are RFC 9457 problem documents.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        api::append_one,
        api::append_batch,
        api::list_records,
        api::get_record,
        api::get_record_by_event,
        api::get_receipt,
        api::inclusion_proof,
        api::tlog_proof,
        api::consistency_proof,
        api::latest_checkpoint,
        api::list_checkpoints,
        api::key_history,
    ),
    components(schemas(
        Problem,
        ProblemField,
        api::AppendRequest,
        api::BatchRequest,
        api::ReceiptBody,
        api::BatchReceipts,
        api::RecordBody,
        api::RecordPage,
        api::InclusionProofBody,
        api::ConsistencyProofBody,
        api::CheckpointBody,
        api::CheckpointPage,
        api::KeyBody,
        api::KeyHistory,
    )),
    modifiers(&BearerKey),
    tags(
        (name = "ingest", description = "For pipelines: append events (role `ingest`)."),
        (name = "read", description = "Read records (role `read`)."),
        (name = "proofs", description = "Proofs, checkpoints and keys (roles `read` and `verify`)."),
    )
)]
pub struct ApiDoc;

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as pretty-printed JSON.
pub fn document_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}
