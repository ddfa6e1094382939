//! A request parser that duplicates header keys and values into a map and never frees them
//! (the real gateway's 401-path leak), run under Zig 0.17's SafeAllocator so it reports at deinit.
const std = @import("std");

fn parseRequest(allocator: std.mem.Allocator, data: []const u8) !std.StringHashMap([]const u8) {
    var headers = std.StringHashMap([]const u8).init(allocator);
    var lines = std.mem.splitSequence(u8, data, "\r\n");
    _ = lines.next();
    while (lines.next()) |line| {
        if (line.len == 0) break;
        var parts = std.mem.splitScalar(u8, line, ':');
        const key = std.mem.trim(u8, parts.next() orelse continue, " ");
        const value = std.mem.trim(u8, parts.rest(), " ");
        try headers.put(try allocator.dupe(u8, key), try allocator.dupe(u8, value));
    }
    return headers;
}

pub fn main() !void {
    var safe: std.heap.SafeAllocator = .init(std.heap.page_allocator, .{});
    defer _ = safe.deinit();
    const allocator = safe.allocator();
    var i: usize = 0;
    while (i < 2) : (i += 1) {
        const headers = try parseRequest(allocator, "GET /health HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n");
        _ = headers; // the 401 path returns without deinit: keys, values and the map storage leak
    }
}
