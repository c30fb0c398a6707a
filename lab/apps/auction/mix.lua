-- wrk script for the auction: the request mix, or one request type alone.
--
--   wrk -t2 -c16 -d20s -s mix.lua http://10.77.0.11/ -- TYPE SEED
--
-- TYPE is "mix" or one of browse, item, photo, bid, sell. The mix (a browsing session with
-- some bidding and selling):
--   browse 40%  a category page: 25 items joined with their sellers       (read)
--   item   30%  an item with its seller and bid history (two joins)       (read)
--   photo  15%  an item's photo from the database, about 48 KB            (read, bulk)
--   bid    10%  a bid: a transaction with a row lock, an insert, an update (write)
--   sell    5%  a new item with a 48 KB photo upload                       (write, bulk)
-- At the end, one line "WRKJSON {...}" with counts, errors and latency percentiles (us).

local CATEGORIES, ITEMS, USERS, PHOTOS, PHOTO_BYTES = 20, 10000, 5000, 400, 48 * 1024
local MIX = { { "browse", 40 }, { "item", 30 }, { "photo", 15 }, { "bid", 10 }, { "sell", 5 } }

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local kind, photo, form_headers, photo_headers

function init(args)
  kind = args[1] or "mix"
  math.randomseed((tonumber(args[2]) or 1) * 1000 + thread_id)
  local bytes = {}
  for i = 1, PHOTO_BYTES do
    bytes[i] = string.char(math.random(0, 255))
  end
  photo = table.concat(bytes)
  form_headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  photo_headers = { ["Content-Type"] = "image/jpeg" }
end

local function pick()
  local r = math.random(100)
  for _, entry in ipairs(MIX) do
    if r <= entry[2] then
      return entry[1]
    end
    r = r - entry[2]
  end
  return MIX[1][1]
end

function request()
  local k = kind
  if k == "mix" then
    k = pick()
  end
  if k == "browse" then
    return wrk.format("GET", "/browse?category=" .. math.random(CATEGORIES) .. "&page=" .. math.random(0, 3))
  elseif k == "item" then
    return wrk.format("GET", "/item?id=" .. math.random(ITEMS))
  elseif k == "photo" then
    return wrk.format("GET", "/photo?id=" .. math.random(PHOTOS))
  elseif k == "bid" then
    local body = "item=" .. math.random(ITEMS) .. "&user=" .. math.random(USERS) ..
        "&amount=" .. math.random(1, 400) .. "." .. math.random(0, 99)
    return wrk.format("POST", "/bid", form_headers, body)
  elseif k == "sell" then
    return wrk.format("POST", "/sell?user=" .. math.random(USERS) .. "&category=" ..
        math.random(CATEGORIES) .. "&title=new+item", photo_headers, photo)
  end
  error("unknown request type " .. k)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "stdev": %.1f, "max": %d, ' ..
    '"p50": %d, "p90": %d, "p99": %d, "p999": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
