# The disk's partition sizes, shared by build.sh (the disk) and bundle.sh (a slot's image:
# RAUC writes it whole into the inactive root partition, so it is exactly the slot's size).
# shellcheck disable=SC2034
esp_mib=256 slot_mib=1536 data_mib=512
