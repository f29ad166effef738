//! DPoP at the token endpoint (RFC 9449 §5, §8): the proof of a token request, its `jti`
//! recorded once, and the key the issued tokens are bound to.

use axum::http::HeaderMap;

use super::error::{ErrorCode, OAuthError};
pub use crate::dpop::*;

/// The proof of a token request, checked (RFC 9449 §5): `invalid_dpop_proof` for a bad one,
/// `use_dpop_nonce` with a fresh nonce when it lacks ours (§8). `None` when there is none.
pub fn at_token_endpoint(
    state: &crate::state::AppState,
    headers: &HeaderMap,
) -> Result<Option<Proof>, OAuthError> {
    let now = state.now();
    let refuse = |e: DpopError| match e {
        DpopError::Invalid(why) => OAuthError::new(ErrorCode::InvalidDpopProof, why),
        DpopError::UseNonce => {
            let mut e = OAuthError::new(
                ErrorCode::UseDpopNonce,
                "send the DPoP proof again with the nonce of the DPoP-Nonce header",
            );
            e.dpop_nonce = Some(new_nonce(&state.vault, now));
            e
        }
        DpopError::Unavailable => OAuthError::server_error(),
    };
    let Some(proof) = proof_header(headers).map_err(refuse)? else {
        return Ok(None);
    };
    let url = format!("{}/token", state.config.issuer);
    let request = Request {
        method: "POST",
        url: &url,
        access_token: None,
    };
    check(proof, request, &state.vault, now)
        .map(Some)
        .map_err(refuse)
}

/// Records a proof's `jti` (RFC 9449 §11.1); a second sight anywhere is `invalid_dpop_proof`.
pub async fn record(
    state: &crate::state::AppState,
    proof: Option<&Proof>,
) -> Result<(), OAuthError> {
    let Some(proof) = proof else {
        return Ok(());
    };
    let (digest, until) = proof.replay_key();
    if state.store.remember_jti(&digest, until).await? {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "this DPoP proof was used before; make a new one for every request",
        ))
    }
}

/// The key the tokens of a request are bound to: the proof's when there is one. An
/// organisation that requires DPoP refuses a token request without one (RFC 9449 §5.2, as
/// `dpop_bound_access_tokens` asks of a client).
pub fn binding(proof: Option<&Proof>, org_requires: bool) -> Result<Option<String>, OAuthError> {
    match proof {
        Some(p) => Ok(Some(p.jkt.clone())),
        None if org_requires => Err(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "this organisation requires DPoP-bound tokens: send a DPoP proof with the token request",
        )),
        None => Ok(None),
    }
}
