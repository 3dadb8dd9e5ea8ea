# Sourced by the ladder benches. `ready_at BASE ASSET` prints the time
# (seconds since the epoch) at which ASSET became ready, from one event
# stream of the server (`GET /api/assets/{id}/events`: a snapshot of the
# status, then its stages as they happen) rather than polling: a `curl`
# every 50 ms took about 1.5 CPU-seconds of every 11 from the encoders
# being measured. Exits the script if the asset failed.
ready_at() {
  local base=$1 asset=$2 line events reader
  exec {events}< <(exec curl -fsN "$base/api/assets/$asset/events")
  reader=$!
  while IFS= read -r line <&"$events"; do
    case $line in
      *'"status":"ready"'* | *'"stage":"ready"'*)
        date +%s.%N
        kill "$reader" 2>/dev/null
        exec {events}<&-
        return ;;
      *'"status":"failed"'* | *'"stage":"failed"'*)
        echo "bench: asset $asset failed: $line" >&2
        kill "$reader" 2>/dev/null
        exit 1 ;;
    esac
  done
  echo "bench: the event stream of asset $asset ended before it was ready" >&2
  exit 1
}
