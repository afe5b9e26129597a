//! Host bindings of the three worlds of `ponder:plugin@0.2.0`, generated from `wit/v0.2.0/`.

super::contract_bindings!("../../wit/v0.2.0");
