//! The MCP server driven by a real rmcp client over an in-process duplex pipe: tool listing and
//! schemas, server info, and how domain errors come back (tool errors, not protocol errors).

mod support;
mod tools;
