# Sourced by scripts/cluster and benches/upload_load.sh: runs a one-node
# Garage (an S3-compatible store) with one bucket and one key.
#
#   garage_up DIR S3_PORT RPC_PORT
#
# starts `garage server` on 127.0.0.1 with its state in DIR (kept between
# runs), records its pid in GARAGE_PID and sets GARAGE_STORAGE to the
# StreamForge storage URL of the bucket (prefix "media", credentials in it).
# The caller kills GARAGE_PID when done.

GARAGE_KEY_ID=GK5f0c7e1d2a3b4c5d6e7f8091
GARAGE_SECRET=4c6f6e672073656372657420666f72207468652073746f726167652074657374

garage_up() {
  local dir=$1 s3_port=$2 rpc_port=$3
  local bin
  bin=$(command -v garage || echo "$HOME/.cargo/bin/garage")
  mkdir -p "$dir"
  cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$GARAGE_SECRET"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
TOML
  "$bin" -c "$dir/garage.toml" server >"$dir/server.log" 2>&1 &
  GARAGE_PID=$!
  local g=("$bin" -c "$dir/garage.toml")
  for _ in $(seq 1 150); do "${g[@]}" status >/dev/null 2>&1 && break; sleep 0.2; done
  if "${g[@]}" status 2>/dev/null | grep -q 'NO ROLE ASSIGNED'; then
    local id
    id=$("${g[@]}" status | awk '/NO ROLE ASSIGNED/{print $1}')
    "${g[@]}" layout assign -z dc1 -c 100G "$id" >/dev/null
    "${g[@]}" layout apply --version 1 >/dev/null
    "${g[@]}" bucket create streamforge >/dev/null
    "${g[@]}" key import --yes -n streamforge "$GARAGE_KEY_ID" "$GARAGE_SECRET" >/dev/null
    "${g[@]}" bucket allow --read --write --owner streamforge --key streamforge >/dev/null
  fi
  GARAGE_STORAGE="s3://streamforge/media?endpoint=http://127.0.0.1:$s3_port&region=garage&access_key_id=$GARAGE_KEY_ID&secret_access_key=$GARAGE_SECRET"
}
