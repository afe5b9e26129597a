//! The SDK builds plugins against the contract it bundles (`sdk/wit/`, a link to the workspace's
//! `wit/v0.2.0/`): it must be exactly that version's WIT.

#[test]
fn bundled_wit_is_the_workspace_contract_0_2_0() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/v0.2.0/ponder-plugin.wit");
    let workspace = std::fs::read_to_string(&path).expect("wit/v0.2.0 exists");
    assert_eq!(ponder_sdk::WIT, workspace);
    assert!(ponder_sdk::WIT.contains("package ponder:plugin@0.2.0;"));
}
