//! README's configuration reference must list exactly the properties of `config::PROPERTIES`,
//! with the same defaults, in the same order.

use flb_sigv4::config::PROPERTIES;

#[test]
fn readme_reference_matches_the_property_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("## Configuration reference")
        .nth(1)
        .expect("a Configuration reference section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let rows: Vec<(String, String)> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split(" | ").collect();
            let name = cells[0]
                .trim_start_matches("| ")
                .trim_matches('`')
                .to_string();
            let default = cells
                .get(1)
                .map(|d| d.trim().trim_matches('`').to_string())
                .unwrap_or_default();
            (name, default)
        })
        .collect();
    let expected: Vec<(String, String)> = PROPERTIES
        .iter()
        .map(|p| (p.name.to_string(), p.default.unwrap_or("—").to_string()))
        .collect();
    assert_eq!(
        rows, expected,
        "README's reference table is out of date with src/config/properties.rs"
    );
}
