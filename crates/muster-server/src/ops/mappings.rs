//! Mappings: each put stores a new version; earlier versions stay readable.
use crate::auth::Caller;
use crate::base::error::ApiResult;
use crate::base::state::AppState;
use crate::ops::audit::recorded;
use crate::ops::input::MappingName;
use muster_core::mapping::MappingDoc;
use muster_core::policy::Permission;
use muster_store::MappingRow;

/// Stores `doc` as the next version of mapping `name`.
pub(crate) async fn put(
    state: &AppState,
    caller: &Caller,
    name: MappingName,
    doc: MappingDoc,
) -> ApiResult<MappingRow> {
    caller.require(Permission::MappingsWrite)?;
    let row = MappingRow {
        tenant: caller.principal.tenant.clone(),
        name: name.into_inner(),
        version: 0,
        document: doc.to_canonical_json(),
        created_at: state.clock.now(),
        created_by: caller.name(),
    };
    let audit = recorded(
        state,
        caller,
        "mapping.created",
        |m: &MappingRow| serde_json::json!({ "name": m.name, "version": m.version }),
    );
    state.db(move |s| s.mapping_put(row, audit)).await
}
