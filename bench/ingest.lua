-- wrk script of bench/ingest.py: replays pre-built HTTP requests and tallies the answers.
--
--   wrk -t C -c C -d 20s --timeout 30s -s bench/ingest.lua URL -- PREFIX CYCLE EXPECT_ACCEPTED EXPECT_DUPLICATES
--
-- One connection per thread (-t = -c): a thread's requests and answers then alternate
-- strictly, so its k-th answer is the answer to its k-th request and the bench knows
-- which delivery each answer belongs to. Thread i reads PREFIX.i, written by
-- bench/ingest.py: records "<byte length>\n<raw HTTP request>", already signed.
-- CYCLE 1: start over at the end (the same request may be sent again: /web/health,
-- the webhook, duplicate redeliveries); 0: each request once, and a thread that has
-- sent all of its requests stops (the bench then reports the phase as cut short).
-- EXPECT_*: the answer every 2xx should give ({"accepted": A, "duplicates": D}); -1 =
-- not a hub phase. Each thread keeps the answers that differ ("odd") and the statuses.
-- done() prints one line "WRK_RESULT <json>" that bench/ingest.py reads.

local counter = 0
local threads = {}

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

-- Latency of each answer, in microseconds, kept as a histogram per thread: the bench merges
-- the histograms of several runs exactly (wrk's own statistics cannot be merged). One
-- connection per thread: the answer being read is always that of the last request sent.
local ffi = require("ffi")
ffi.cdef [[
   typedef struct { long tv_sec; long tv_nsec; } ingest_timespec;
   int clock_gettime(int clk_id, ingest_timespec *tp);
]]
local ts = ffi.new("ingest_timespec")
local function now_us()
   ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
   return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end
local sent_at = 0
hist = {}

local reqs, n = {}, 0
local cycle, expect_accepted, expect_duplicates = false, -1, -1
local verified = false
sent, answered, ok, accepted, duplicates, exhausted = 0, 0, 0, 0, 0, 0
odd, statuses = "", {}

function init(args)
   local prefix = args[1]
   cycle = args[2] == "1"
   expect_accepted = tonumber(args[3])
   expect_duplicates = tonumber(args[4])
   local f = assert(io.open(prefix .. "." .. tid, "rb"))
   local data = f:read("*a")
   f:close()
   local pos = 1
   while pos <= #data do
      local nl = data:find("\n", pos, true)
      local len = tonumber(data:sub(pos, nl - 1))
      n = n + 1
      reqs[n] = data:sub(nl + 1, nl + len)
      pos = nl + 1 + len
   end
   assert(n > 0, "no request for thread " .. tid)
end

function request()
   -- wrk calls request() once on thread 0 before the run, to check what it returns
   -- (script_verify_request): that call sends nothing, so it does not count
   if tid == 0 and not verified then
      verified = true
      return reqs[1]
   end
   sent = sent + 1
   sent_at = now_us()
   if sent > n then
      if not cycle then
         -- unreachable unless the thread ran out: the stop in response() came too late
         exhausted = exhausted + 1
         return reqs[n]
      end
      return reqs[(sent - 1) % n + 1]
   end
   return reqs[sent]
end

function response(status, headers, body)
   local us = math.floor(now_us() - sent_at + 0.5)
   hist[us] = (hist[us] or 0) + 1
   answered = answered + 1
   if status >= 200 and status < 300 then
      ok = ok + 1
      if expect_accepted >= 0 then
         local a = tonumber(body:match('"accepted":%s*(%d+)')) or -1
         local d = tonumber(body:match('"duplicates":%s*(%d+)')) or -1
         if a > 0 then accepted = accepted + a end
         if d > 0 then duplicates = duplicates + d end
         if a ~= expect_accepted or d ~= expect_duplicates or body:find("other_portal", 1, true) then
            odd = odd .. answered .. ":" .. a .. ":" .. d .. ","
         end
      end
   else
      local key = tostring(status)
      statuses[key] = (statuses[key] or 0) + 1
      if expect_accepted >= 0 then
         odd = odd .. answered .. ":s" .. status .. ","
      end
   end
   if not cycle and answered >= n then
      exhausted = 1
      wrk.thread:stop()
   end
end

local function json_string(s)
   return '"' .. tostring(s):gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, requests)
   local per_thread = {}
   for _, t in ipairs(threads) do
      local st = {}
      for k, v in pairs(t:get("statuses") or {}) do
         table.insert(st, json_string(k) .. ":" .. v)
      end
      table.insert(per_thread, string.format(
         '{"tid":%d,"sent":%d,"answered":%d,"ok":%d,"accepted":%d,"duplicates":%d,"exhausted":%d,'
            .. '"odd":%s,"statuses":{%s}}',
         t:get("tid"), t:get("sent"), t:get("answered"), t:get("ok"), t:get("accepted"),
         t:get("duplicates"), t:get("exhausted"), json_string(t:get("odd")), table.concat(st, ",")))
   end
   local hist = {}
   for _, t in ipairs(threads) do
      for us, count in pairs(t:get("hist")) do
         hist[us] = (hist[us] or 0) + count
      end
   end
   local pairs_out = {}
   for us, count in pairs(hist) do
      table.insert(pairs_out, string.format("[%d,%d]", us, count))
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d},'
         .. '"threads":[%s],"hist":[%s]}\n',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
      latency:percentile(95), latency:percentile(99), latency:percentile(99.9),
      table.concat(per_thread, ","), table.concat(pairs_out, ",")))
end
