//! `GET /opportunity`: opportunities by id with their field history.

use super::*;

pub(super) async fn opportunities(
    State(s): St,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Response {
    let org = &s.dataset.orgs[caller.org];
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let ids: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "oppId")
        .map(|(_, v)| v.as_str())
        .collect();
    if ids.is_empty() {
        return opportunity_error("oppId is required");
    }
    if ids.len() > 100 {
        return opportunity_error("oppId must contain between 1 and 100 values");
    }
    if let Some((_, mode)) = pairs.iter().find(|(k, _)| k == "mode")
        && mode != "OPPORTUNITY_MODE_ID"
    {
        return opportunity_error("mode must be OPPORTUNITY_MODE_ID");
    }
    let out: Vec<Value> = ids
        .iter()
        .filter_map(|id| {
            let key = id.get(..15)?;
            let i = org.opps.iter().position(|o| &o.id[..15] == key)?;
            Some(render::opportunity(org, i, id))
        })
        .collect();
    Json(out).into_response()
}
