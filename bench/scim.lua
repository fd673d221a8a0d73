-- wrk script for bench/scim.sh. MODE picks the request, all under
-- SCIM_BASE (`/scim/v2` on the gateway, empty for the peer), with the
-- bearer token SCIM_TOKEN:
--   create  POST /Users, an Entra ID-shaped User with a new userName
--   patch   PATCH /Users/{id}, Entra's replace of title and department,
--           for the ids of IDS_FILE in turn, each with a new value
--   filter  GET /Users?filter=userName eq "..." for the names of
--           NAMES_FILE in turn; an answer without exactly one User is a miss
--   get     GET SCIM_PATH
-- `done` prints one `scim-wrk` line: requests, unexpected statuses,
-- misses, requests per second, p50 and p99.
local mode = os.getenv("MODE") or "get"
local base = os.getenv("SCIM_BASE") or ""
local run = os.getenv("RUN_ID") or "r"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SCIM_TOKEN")
wrk.headers["Accept"] = "application/scim+json"
wrk.headers["Content-Type"] = "application/scim+json"

local function lines(file)
  local out = {}
  if file and file ~= "" then
    for line in io.lines(file) do
      if line ~= "" then out[#out + 1] = line end
    end
  end
  return out
end

local function encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

-- Each wrk thread runs in its own Lua state: `setup` numbers them and
-- `done` sums what they counted.
local threads = {}
setup = function(thread)
  thread:set("tid", #threads + 1)
  threads[#threads + 1] = thread
end

local items = {}
init = function(args)
  if mode == "patch" then items = lines(os.getenv("IDS_FILE")) end
  if mode == "filter" then items = lines(os.getenv("NAMES_FILE")) end
end

local n = 0
request = function()
  n = n + 1
  if mode == "create" then
    local name = string.format("bench-%s-%d-%d@example.com", run, tid, n)
    local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",'
      .. '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],'
      .. '"userName":"' .. name .. '","externalId":"x-' .. run .. '-' .. tid .. '-' .. n .. '",'
      .. '"active":true,"name":{"givenName":"Bench","familyName":"User' .. n .. '"},'
      .. '"emails":[{"primary":true,"type":"work","value":"' .. name .. '"}],'
      .. '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Eng"}}'
    return wrk.format("POST", base .. "/Users", nil, body)
  elseif mode == "patch" then
    local id = items[((n + tid * 7919) % #items) + 1]
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":['
      .. '{"op":"Replace","path":"title","value":"T' .. run .. tid .. '-' .. n .. '"},'
      .. '{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",'
      .. '"value":"D' .. (n % 50) .. '"}]}'
    return wrk.format("PATCH", base .. "/Users/" .. id, nil, body)
  elseif mode == "filter" then
    local name = items[((n + tid * 7919) % #items) + 1]
    return wrk.format("GET", base .. "/Users?filter=" .. encode('userName eq "' .. name .. '"'))
  end
  return wrk.format("GET", base .. (os.getenv("SCIM_PATH") or "/Users"))
end

unexpected, misses = 0, 0
local want = (mode == "create") and 201 or 200
response = function(status, headers, body)
  -- A PATCH may answer 204 without the resource (RFC 7644 §3.5.2).
  if status ~= want and not (mode == "patch" and status == 204) then
    unexpected = unexpected + 1
  elseif mode == "filter" and not body:find('"totalResults":%s*1[,}%s]') then
    misses = misses + 1
  end
end

done = function(summary, latency, requests)
  local bad, missed = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("unexpected")
    missed = missed + t:get("misses")
  end
  io.write(string.format("scim-wrk requests=%d unexpected=%d misses=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, bad, missed, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
