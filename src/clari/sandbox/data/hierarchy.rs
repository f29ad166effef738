//! The forecast hierarchy: 1 CEO, 3 VPs, 2 managers each, 5 reps each (40 people).

use super::names::{FIRST, LAST, REGIONS};
use super::{Level, Rng, SandboxUser};

/// The people of one organisation, parents before children.
pub(super) fn people(rng: &mut Rng, domain: &str, id_base: i64) -> Vec<SandboxUser> {
    let mut users: Vec<SandboxUser> = Vec::with_capacity(40);
    let mut used_names = std::collections::HashSet::new();
    let mut person = |rng: &mut Rng| loop {
        let n = format!("{} {}", rng.pick(FIRST), rng.pick(LAST));
        if used_names.insert(n.clone()) {
            return n;
        }
    };
    let mut add = |users: &mut Vec<SandboxUser>,
                   rng: &mut Rng,
                   level: Level,
                   title: String,
                   parent: Option<usize>| {
        let idx = users.len();
        let full = person(rng);
        let email = format!("{}@{domain}", full.to_lowercase().replace(' ', "."));
        let scope_kind = if level == Level::Rep { "REP" } else { "MGR" };
        users.push(SandboxUser {
            id: (id_base + idx as i64).to_string(),
            name: full,
            email,
            crm_id: format!("0055e00000{}", rng.alnum(8)),
            hierarchy_id: format!("h{}", id_base + idx as i64),
            hierarchy_name: title,
            scope_id: format!("{}::{scope_kind}", id_base + idx as i64),
            level,
            parent,
            children: Vec::new(),
        });
        if let Some(p) = parent {
            users[p].children.push(idx);
        }
        idx
    };
    let ceo = add(&mut users, rng, Level::Ceo, "CEO".into(), None);
    for region in REGIONS {
        let vp = add(
            &mut users,
            rng,
            Level::Vp,
            format!("VP Sales - {region}"),
            Some(ceo),
        );
        for team in 1..=2 {
            let mgr = add(
                &mut users,
                rng,
                Level::Manager,
                format!("Sales Manager - {region} {team}"),
                Some(vp),
            );
            for seat in 1..=5 {
                add(
                    &mut users,
                    rng,
                    Level::Rep,
                    format!("Account Executive - {region} {team}.{seat}"),
                    Some(mgr),
                );
            }
        }
    }
    users
}

pub(super) fn depth(users: &[SandboxUser], mut u: usize) -> usize {
    let mut d = 0;
    while let Some(p) = users[u].parent {
        d += 1;
        u = p;
    }
    d
}
