//! Stand-in for the gateway's config loader: returns an owned copy the caller must free.
const std = @import("std");

pub const Config = struct {
    raw: []u8,
    model: []u8,
};

pub fn loadConfig(allocator: std.mem.Allocator) !*Config {
    const cfg = try allocator.create(Config);
    cfg.raw = try allocator.dupe(u8, "{\"model\":\"nim\",\"port\":18789,\"rate_limit\":100,\"cron\":true,\"x\":1}");
    cfg.model = try allocator.dupe(u8, "nim");
    return cfg;
}
