//! Which orgs a console user may see: every query of the console's history and dead
//! letters is filtered by it, so another org's batch is as absent as one that never was.

/// The orgs a console user may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every org (`*`).
    All,
    /// These orgs only.
    Orgs(Vec<String>),
}

impl Scope {
    /// A stored list of orgs: `{*}` is every org.
    pub fn from_orgs(orgs: Vec<String>) -> Self {
        if orgs.iter().any(|o| o == "*") {
            Scope::All
        } else {
            Scope::Orgs(orgs)
        }
    }

    /// Whether `org` is in scope (a batch rejected before its org was read has none: only
    /// users of every org see it).
    pub fn allows(&self, org: Option<&str>) -> bool {
        match (self, org) {
            (Scope::All, _) => true,
            (Scope::Orgs(orgs), Some(org)) => orgs.iter().any(|o| o == org),
            (Scope::Orgs(_), None) => false,
        }
    }

    /// The `org_id = ANY($n)` list, `None` for every org.
    pub fn as_param(&self) -> Option<&[String]> {
        match self {
            Scope::All => None,
            Scope::Orgs(orgs) => Some(orgs),
        }
    }
}
