# Sourced by the ladder benches. `ready_at BASE ASSET` prints the time
# (seconds since the epoch) at which ASSET became ready, from one event
# stream of the server (`GET /api/assets/{id}/events`: a snapshot of the
# status, then its stages as they happen) rather than polling: a `curl`
# every 50 ms took about 1.5 CPU-seconds of every 11 from the encoders
# being measured. Should the stream drop events (`event: lagged`) or say
# nothing for 30 s, the status is asked once (and a `ready` found that way
# is reported as approximate). Exits the script if the asset failed.
ready_at() {
  local base=$1 asset=$2 line events reader status
  exec {events}< <(exec curl -fsN "$base/api/assets/$asset/events")
  reader=$!
  while :; do
    if IFS= read -r -t 30 line <&"$events"; then
      case $line in
        *'"status":"ready"'* | *'"stage":"ready"'*)
          date +%s.%N
          break ;;
        *'"status":"failed"'* | *'"stage":"failed"'*)
          echo "bench: asset $asset failed: $line" >&2
          kill "$reader" 2>/dev/null
          exit 1 ;;
        'event: lagged'*) ;;
        *) continue ;;
      esac
    elif [ $? -le 128 ]; then
      echo "bench: the event stream of asset $asset ended before it was ready" >&2
      exit 1
    fi
    status=$(curl -fs "$base/api/assets/$asset" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')
    case $status in
      ready)
        echo "bench: asset $asset: its ready event was lost; the time is approximate" >&2
        date +%s.%N
        break ;;
      failed) echo "bench: asset $asset failed" >&2; kill "$reader" 2>/dev/null; exit 1 ;;
    esac
  done
  kill "$reader" 2>/dev/null
  exec {events}<&-
}
