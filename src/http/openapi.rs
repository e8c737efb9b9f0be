//! The OpenAPI 3.1 description of the `/v1` API, assembled from the handler modules' annotations
//! (they do not import this module), and the route that serves it.
//! `docs/openapi.json` is the checked-in copy; a test keeps it identical to what the code serves
//! (regenerate with `auditex openapi > docs/openapi.json`).

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::error::{Problem, ProblemField};
use super::{api, holds, integrity, package, subjects, views};
use crate::app::AppState;
use crate::app::integrity as checks;

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
        api::custody_bundle,
        api::export,
        integrity::start_check,
        integrity::list_checks,
        integrity::get_check,
        integrity::cancel_check,
        views::search_decisions,
        views::get_decision,
        views::model_inventory,
        views::oversight_queue,
        views::oversight_actions,
        views::subject_records,
        package::subject_package,
        views::daily_volumes,
        views::projection_status,
        subjects::erase_subject,
        holds::list_holds,
        holds::place_hold,
        holds::lift_hold,
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
        api::CheckpointBranch,
        api::CheckpointPage,
        api::KeyBody,
        api::KeyHistory,
        integrity::StartCheckRequest,
        checks::CheckState,
        checks::CheckOutcome,
        checks::ProgressBody,
        checks::CheckedCheckpointBody,
        checks::FailureBody,
        checks::ReportBody,
        checks::FiledRecordBody,
        checks::IntegrityCheckBody,
        integrity::CheckPage,
        views::DecisionBody,
        views::DecisionPage,
        views::OversightBody,
        views::DecisionDetail,
        views::ModelBody,
        views::ModelInventory,
        views::OversightPage,
        views::SubjectEntry,
        views::SubjectPage,
        views::DailyBody,
        views::DailyVolumes,
        views::ProjectionBody,
        views::ProjectionsBody,
        subjects::ErasureRequest,
        subjects::ErasureReceipt,
        holds::PlaceHoldRequest,
        holds::LiftHoldRequest,
        holds::HoldBody,
        holds::HoldList,
    )),
    modifiers(&BearerKey),
    tags(
        (name = "ingest", description = "For pipelines: append events (role `ingest`)."),
        (name = "read", description = "Read records (role `read`)."),
        (name = "proofs", description = "Proofs, checkpoints and keys (roles `read` and `verify`)."),
        (name = "views", description = "Read-side views derived from the ledger: decision search, model inventory, human oversight, subject index, daily volumes (role `read`)."),
        (name = "subjects", description = "Subject rights: erasure of a data subject's personal data (role `privacy`, which may also read the subject index)."),
        (name = "integrity", description = "Full integrity checks of the ledger, run by the service, their progress and their results filed in the ledger (roles `read` and `verify`)."),
        (name = "holds", description = "Legal holds on a subject or one of its decisions (GDPR Art. 17(3)(b)/(e)): while one is active, nothing it holds is erased."),
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
        // Every authenticated operation can also answer these; document them once, here.
        let common = [
            ("401", "No valid API key"),
            ("403", "The key's role may not do this"),
            ("429", "Rate limited; see Retry-After"),
            ("503", "Overloaded or database unavailable; see Retry-After"),
        ];
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                for (code, description) in common {
                    if !op.responses.responses.contains_key(code) {
                        let response = ResponseBuilder::new()
                            .description(description)
                            .content(
                                "application/problem+json",
                                Content::new(Some(Ref::from_schema_name("Problem"))),
                            )
                            .build();
                        op.responses
                            .responses
                            .insert(code.to_owned(), RefOr::T(response));
                    }
                }
            }
        }
    }
}

/// The document as pretty-printed JSON.
pub fn document_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
}

/// The route of the document: `/v1/openapi.json`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/openapi.json", get(openapi_document))
}

/// The OpenAPI 3.1 document of this API.
pub async fn openapi_document() -> Response {
    let mut response = document_json().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
