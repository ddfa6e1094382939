//! Stand-in for the gateway's request handler with the leaks TARGET.md suspects:
//! a 401 path that returns before freeing the parsed headers, and /agent loading a config
//! that is never freed.
const std = @import("std");
const config = @import("config.zig");

pub fn parseHeaders(allocator: std.mem.Allocator, raw: []const u8) ![]u8 {
    return allocator.dupe(u8, raw);
}

pub fn handleRequest(allocator: std.mem.Allocator, path: []const u8, token: ?[]const u8) !u16 {
    const headers = try parseHeaders(allocator, "GET /health HTTP/1.1\r\nHost: 127.0.0.1:18789\r\n\r\n");
    if (token == null) return 401; // leak: headers not freed on the 401 path
    defer allocator.free(headers);
    if (std.mem.eql(u8, path, "/agent")) {
        const cfg = try config.loadConfig(allocator); // leak: never freed
        _ = cfg;
    }
    return 200;
}
