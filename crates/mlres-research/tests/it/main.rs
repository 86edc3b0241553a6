//! The research fetcher against local servers: credentials stay on their host across
//! redirects, retries honour Retry-After, the cache answers offline and says how old it is.

mod fetch;
