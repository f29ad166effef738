//! The authorization server's rules as pure functions: no I/O, time passed in. Handlers read the
//! request and the store, ask these what to do, do the I/O decided on, and render. (The
//! authorization request itself is checked by `request::validate_authorization_request`, and
//! redirect URIs by `redirect`.)

use super::error::{ErrorCode, OAuthError};
use super::pkce;
use crate::scope::ScopeSet;
use crate::store::{ClientId, CodeRecord, Membership, OrgId, Role};

/// How long after a rotation a client may retry with the rotated token (a lost response).
pub const ROTATION_GRACE_SECS: i64 = 10;

/// The organisations a user may grant access to: those they belong to that are enabled, as
/// (id, name) in membership order.
pub fn selectable_orgs(memberships: &[Membership]) -> Vec<(OrgId, String)> {
    memberships
        .iter()
        .filter(|m| !m.organization.disabled && !m.suspended)
        .map(|m| (m.organization.id.clone(), m.organization.name.clone()))
        .collect()
}

/// Whether the person administers at least one organisation they can choose.
pub fn admin_somewhere(memberships: &[Membership]) -> bool {
    memberships
        .iter()
        .any(|m| !m.organization.disabled && !m.suspended && m.role == Role::Admin)
}

/// Whether the person administers this organisation (and may grant `admin` in it).
pub fn is_admin_of(memberships: &[Membership], org: &OrgId) -> bool {
    memberships.iter().any(|m| {
        &m.organization.id == org
            && !m.organization.disabled
            && !m.suspended
            && m.role == Role::Admin
    })
}

/// The organisation a consent chose: the one named when it is selectable, or the only one when
/// none is named. `None` means the choice is missing or not the user's to make.
pub fn chosen_org(selectable: &[(OrgId, String)], named: Option<&str>) -> Option<OrgId> {
    match (named, selectable) {
        (Some(n), _) => selectable
            .iter()
            .find(|(id, _)| id.as_str() == n)
            .map(|(id, _)| id.clone()),
        (None, [(only, _)]) => Some(only.clone()),
        (None, _) => None,
    }
}

/// The scope of an access token from a refresh: the refresh token's, or a narrower one asked
/// for; never wider (RFC 6749 §6).
pub fn narrow_scope(held: &ScopeSet, asked: Option<&str>) -> Result<ScopeSet, OAuthError> {
    let Some(asked) = asked else {
        return Ok(held.clone());
    };
    let asked = ScopeSet::parse(asked)
        .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?;
    if asked.is_empty() || !held.covers(&asked) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "a refresh may narrow the scope but never widen it",
        ));
    }
    Ok(asked)
}

/// The scope of a token whose grant has no consent page (client credentials, ID-JAG): what is
/// asked (everything `allowed` when nothing is) within what `allowed` permits, honouring
/// `clari:read` on either side (RFC 6749 §3.3: the server may issue less than asked, and says
/// so in the response). Nothing in common is `invalid_scope`.
pub fn offered_scope(asked: Option<&str>, allowed: &ScopeSet) -> Result<ScopeSet, OAuthError> {
    if allowed.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "no scope may be granted here",
        ));
    }
    let Some(asked) = asked.filter(|a| !a.trim().is_empty()) else {
        return Ok(allowed.clone());
    };
    let asked = ScopeSet::parse(asked)
        .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?;
    let both: ScopeSet = asked
        .iter()
        .filter(|s| allowed.allows(*s))
        .chain(allowed.iter().filter(|s| asked.allows(*s)))
        .collect();
    if both.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!(
                "none of the requested scopes may be granted here; this client may have {allowed}"
            ),
        ));
    }
    Ok(both)
}

/// What presenting a refresh token calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Unused and live: rotate it.
    Rotate,
    /// Rotated moments ago: a retry (lost response, or a simultaneous refresh).
    GraceRetry,
    /// Revoked, or rotated longer ago: someone else holds this family; end the sign-in.
    Replay,
    /// Past its lifetime.
    Expired,
}

/// The decision for a refresh token in this state at `now`.
pub fn decide_refresh(
    rotated_at: Option<i64>,
    revoked_at: Option<i64>,
    expires_at: i64,
    now: i64,
) -> RefreshDecision {
    if revoked_at.is_some() {
        return RefreshDecision::Replay;
    }
    if now >= expires_at {
        return RefreshDecision::Expired;
    }
    match rotated_at {
        None => RefreshDecision::Rotate,
        Some(at) if within_grace(at, now) => RefreshDecision::GraceRetry,
        Some(_) => RefreshDecision::Replay,
    }
}

/// Whether a rotation at `rotated_at` still admits a retry at `now`.
pub fn within_grace(rotated_at: i64, now: i64) -> bool {
    (0..=ROTATION_GRACE_SECS).contains(&(now - rotated_at))
}

/// Why a code cannot be redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRefusal {
    /// Used before: every token issued from it must be revoked.
    Replayed,
    /// Any other reason, in words for `invalid_grant`.
    Invalid(&'static str),
}

/// What the token request presents with a code.
pub struct Redemption<'a> {
    pub client_id: &'a ClientId,
    pub redirect_uri: Option<&'a str>,
    pub verifier: Option<&'a str>,
}

/// Checks a code against the redeeming request: same client, unused, unexpired, the exact
/// redirect URI, and a PKCE verifier matching the challenge.
pub fn check_code_redemption(
    code: &CodeRecord,
    req: &Redemption<'_>,
    now: i64,
) -> Result<(), CodeRefusal> {
    if &code.client_id != req.client_id {
        return Err(CodeRefusal::Invalid(
            "the authorization code was issued to another client",
        ));
    }
    if code.consumed_at.is_some() {
        return Err(CodeRefusal::Replayed);
    }
    if now >= code.expires_at {
        return Err(CodeRefusal::Invalid("the authorization code has expired"));
    }
    if req.redirect_uri != Some(code.redirect_uri.as_str()) {
        return Err(CodeRefusal::Invalid(
            "redirect_uri must equal the one in the authorization request",
        ));
    }
    let Some(verifier) = req.verifier else {
        return Err(CodeRefusal::Invalid("code_verifier is required"));
    };
    if !pkce::verify_s256(verifier, &code.code_challenge) {
        return Err(CodeRefusal::Invalid(
            "the code_verifier does not match the code_challenge",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{GrantId, Organization, UserId};

    fn membership(id: &str, disabled: bool) -> Membership {
        Membership {
            organization: Organization {
                id: OrgId::parse(id).unwrap(),
                name: format!("Org {id}"),
                disabled,
                created_at: 0,
                slug: format!("org-{id}"),
            },
            role: Role::Member,
            suspended: false,
        }
    }

    #[test]
    fn only_enabled_organisations_are_selectable_and_the_choice_must_be_one_of_them() {
        let orgs = selectable_orgs(&[membership("a", false), membership("b", true)]);
        assert_eq!(orgs, vec![(OrgId::parse("a").unwrap(), "Org a".into())]);
        assert_eq!(
            chosen_org(&orgs, None),
            Some(OrgId::parse("a").unwrap()),
            "the only one"
        );
        assert_eq!(
            chosen_org(&orgs, Some("a")),
            Some(OrgId::parse("a").unwrap())
        );
        assert_eq!(
            chosen_org(&orgs, Some("b")),
            None,
            "a disabled organisation"
        );
        assert_eq!(chosen_org(&orgs, Some("zzz")), None, "not the user's");
        let two = selectable_orgs(&[membership("a", false), membership("c", false)]);
        assert_eq!(
            chosen_org(&two, None),
            None,
            "several: the user must choose"
        );
        assert_eq!(chosen_org(&[], None), None);
    }

    #[test]
    fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
        let held = ScopeSet::parse("forecasts:read users:read").unwrap();
        assert_eq!(narrow_scope(&held, None).unwrap(), held);
        let narrow = ScopeSet::parse("forecasts:read users:read").unwrap();
        let offered =
            |a: Option<&str>, allowed: &ScopeSet| offered_scope(a, allowed).map(|s| s.to_string());
        assert_eq!(offered(None, &narrow).unwrap(), "forecasts:read users:read");
        assert_eq!(
            offered(Some("clari:read"), &narrow).unwrap(),
            "forecasts:read users:read"
        );
        assert_eq!(
            offered(Some("forecasts:read audit:read"), &narrow).unwrap(),
            "forecasts:read"
        );
        let all = ScopeSet::parse("clari:read").unwrap();
        assert_eq!(offered(Some("audit:read"), &all).unwrap(), "audit:read");
        assert!(offered(Some("audit:read"), &narrow).is_err());
        assert!(offered(Some("admin"), &all).is_err());
        assert!(offered(Some("nonsense"), &all).is_err());
        assert!(
            offered(None, &ScopeSet::default()).is_err(),
            "never an empty scope"
        );
        assert_eq!(
            narrow_scope(&held, Some("users:read")).unwrap().to_string(),
            "users:read"
        );
        for wider in [
            "clari:read",
            "audit:read",
            "forecasts:read audit:read",
            "nonsense",
        ] {
            let e = narrow_scope(&held, Some(wider)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidScope, "{wider}");
        }
        assert!(
            narrow_scope(&held, Some(" ")).is_err(),
            "an empty scope is no narrowing"
        );
    }

    #[test]
    fn refresh_decisions_cover_rotation_grace_replay_and_expiry() {
        use RefreshDecision::*;
        let (exp, now) = (2_000, 1_000);
        assert_eq!(decide_refresh(None, None, exp, now), Rotate);
        assert_eq!(decide_refresh(Some(now), None, exp, now), GraceRetry);
        assert_eq!(
            decide_refresh(Some(now - ROTATION_GRACE_SECS), None, exp, now),
            GraceRetry,
            "the window's last second"
        );
        assert_eq!(
            decide_refresh(Some(now - ROTATION_GRACE_SECS - 1), None, exp, now),
            Replay
        );
        assert_eq!(
            decide_refresh(Some(now + 5), None, exp, now),
            Replay,
            "from the future"
        );
        assert_eq!(
            decide_refresh(None, Some(now - 1), exp, now),
            Replay,
            "revoked"
        );
        assert_eq!(decide_refresh(Some(now), Some(now), exp, now), Replay);
        assert_eq!(decide_refresh(None, None, now, now), Expired);
    }

    fn code() -> CodeRecord {
        CodeRecord {
            code_hash: "h".into(),
            grant_id: GrantId::parse("g").unwrap(),
            organization_id: OrgId::parse("o").unwrap(),
            client_id: ClientId::parse("c").unwrap(),
            user_id: UserId::parse("u").unwrap(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            // The RFC 7636 example pair.
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            scope: ScopeSet::parse("clari:read").unwrap(),
            resource: "https://x/mcp".into(),
            created_at: 0,
            expires_at: 60,
            consumed_at: None,
        }
    }

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    #[test]
    fn a_code_is_redeemed_only_by_its_client_once_in_time_with_its_uri_and_verifier() {
        let c = ClientId::parse("c").unwrap();
        let other = ClientId::parse("other").unwrap();
        let ok = Redemption {
            client_id: &c,
            redirect_uri: Some("http://127.0.0.1/cb"),
            verifier: Some(VERIFIER),
        };
        assert_eq!(check_code_redemption(&code(), &ok, 10), Ok(()));
        let invalid = |r: Result<(), CodeRefusal>| matches!(r, Err(CodeRefusal::Invalid(_)));
        assert!(invalid(check_code_redemption(
            &code(),
            &Redemption {
                client_id: &other,
                ..ok
            },
            10
        )));
        assert!(invalid(check_code_redemption(&code(), &ok, 60)), "expired");
        assert!(invalid(check_code_redemption(
            &code(),
            &Redemption {
                redirect_uri: Some("http://127.0.0.1:9/cb"),
                ..ok
            },
            10
        )));
        assert!(invalid(check_code_redemption(
            &code(),
            &Redemption {
                redirect_uri: None,
                ..ok
            },
            10
        )));
        assert!(invalid(check_code_redemption(
            &code(),
            &Redemption {
                verifier: None,
                ..ok
            },
            10
        )));
        assert!(invalid(check_code_redemption(
            &code(),
            &Redemption {
                verifier: Some("wrong-verifier-wrong-verifier-wrong-verifier"),
                ..ok
            },
            10
        )));
        let mut used = code();
        used.consumed_at = Some(5);
        assert_eq!(
            check_code_redemption(&used, &ok, 10),
            Err(CodeRefusal::Replayed)
        );
    }
}
