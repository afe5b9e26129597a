//! A thought template built against the frozen `ponder:plugin@0.1.0` (`wit/v0.1.0/`), with
//! wit-bindgen directly as an old plugin was: the host must keep loading it (no `output-format`
//! export; the host gives it the default output format).

guest_support::plain_template!(wit: "../../../wit/v0.1.0");
