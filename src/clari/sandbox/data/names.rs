//! The words the synthetic data is made of.

pub(super) const FIRST: &[&str] = &[
    "Ava", "Liam", "Maya", "Noah", "Zoe", "Ethan", "Iris", "Owen", "Leah", "Caleb", "Nora",
    "Mason", "Ruby", "Lucas", "Hazel", "Elijah", "Clara", "Miles", "Stella", "Julian", "Violet",
    "Ezra", "Aria", "Henry", "Luna", "Felix", "Ivy", "Theo", "Naomi", "Jonah", "Sadie", "Asher",
    "Eliza", "Silas", "Quinn", "Rowan", "Tessa", "Declan", "Priya", "Mateo",
];
pub(super) const LAST: &[&str] = &[
    "Turner",
    "Patel",
    "Nguyen",
    "Garcia",
    "Kim",
    "Okafor",
    "Schmidt",
    "Rossi",
    "Haddad",
    "Larsen",
    "Costa",
    "Ibrahim",
    "Novak",
    "Silva",
    "Moreau",
    "Tanaka",
    "Walsh",
    "Fischer",
    "Reyes",
    "Bennett",
    "Sato",
    "Kowalski",
    "Mensah",
    "Duarte",
    "Lindqvist",
    "Abbott",
    "Chen",
    "Foster",
    "Hughes",
    "Vargas",
];
pub(super) const COMPANY_A: &[&str] = &[
    "Acme", "Blue", "Cedar", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iron", "Juniper",
    "Keystone", "Lumen", "Maple", "Nimbus", "Orbit", "Pioneer", "Quartz", "River", "Summit",
    "Tidal", "Vertex", "Willow",
];
pub(super) const COMPANY_B: &[&str] = &[
    "Labs",
    "Systems",
    "Logistics",
    "Health",
    "Foods",
    "Capital",
    "Energy",
    "Media",
    "Retail",
    "Robotics",
    "Networks",
    "Bank",
    "Pharma",
    "Motors",
    "Studios",
];
pub(super) const PRODUCTS: &[&str] = &[
    "Platform",
    "Analytics",
    "Security Add-on",
    "Enterprise Suite",
    "Data Cloud",
    "Premium Support",
];
pub(super) const DEAL_TYPES: &[&str] = &["New Business", "Expansion", "Renewal", "Upsell"];
pub(super) const REGIONS: &[&str] = &["East", "West", "Central"];
pub const STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Discovery",
    "Proposal",
    "Negotiation",
    "Closed Won",
    "Closed Lost",
];
pub(super) const ACTIVITY_KINDS: &[&str] = &[
    "MEETING",
    "EMAIL_SENT",
    "EMAIL_RECEIVED",
    "ATTACHMENT_SENT",
    "ATTACHMENT_RECEIVED",
];
