//! Dataset-viewer routes (`/is-valid`, `/splits`, `/rows`, ...). Filled in by the data
//! helpers; returning `None` passes the request on to the Hub/Jobs router.

use crate::{Request, Response, State};

/// Answer a dataset-viewer request, or `None` if `req` is not one.
pub fn handle(req: &Request, state: &State) -> Option<Response> {
    let _ = (req, state);
    None
}
