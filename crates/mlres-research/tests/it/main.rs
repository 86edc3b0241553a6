//! The research fetcher against local servers: credentials stay on their host across
//! redirects, retries honour Retry-After, the cache answers offline and says how old it is.

mod code_support;
mod docs;
mod fetch;
mod github;
mod hubsearch;
mod papers;
