#!/bin/sh
# USB CDC-NCM gadget for the dock link (Linux Documentation/usb/gadget_configfs.rst).
# The serial number is the device ID from the recorder's certificate, so the dock
# can match the recorder by udev's ID_SERIAL_SHORT before any network traffic.
set -eu
G=/sys/kernel/config/usb_gadget/bodycam
CERT=${BODYCAM_CERT:-/var/lib/bodycam/identity/device.crt}

device_id() {
    openssl x509 -in "$CERT" -noout -subject -nameopt sep_multiline,utf8 \
        | sed -n 's/^ *CN=//p'
}

case "${1:-start}" in
start)
    ID=$(device_id)
    [ -n "$ID" ] || { echo "gadget: no device ID in $CERT (enrol first)" >&2; exit 1; }
    modprobe libcomposite
    mkdir -p "$G" && cd "$G"
    echo 0x1d6b > idVendor          # Linux Foundation
    echo 0x0104 > idProduct         # Multifunction Composite Gadget
    mkdir -p strings/0x409 configs/c.1/strings/0x409 functions/ncm.usb0
    echo "$ID" > strings/0x409/serialnumber
    echo "bodycam" > strings/0x409/manufacturer
    echo "BodyCam" > strings/0x409/product
    echo "NCM" > configs/c.1/strings/0x409/configuration
    # Locally administered MACs (02:…) so the host names the link by path, not MAC.
    echo 02:00:00:00:00:01 > functions/ncm.usb0/dev_addr
    echo 02:00:00:00:00:02 > functions/ncm.usb0/host_addr
    [ -e configs/c.1/ncm.usb0 ] || ln -s functions/ncm.usb0 configs/c.1/
    ls /sys/class/udc | head -n1 > UDC
    ;;
stop)
    [ -d "$G" ] || exit 0
    cd "$G"
    echo "" > UDC || true
    rm -f configs/c.1/ncm.usb0
    rmdir configs/c.1/strings/0x409 configs/c.1 functions/ncm.usb0 strings/0x409 2>/dev/null || true
    cd / && rmdir "$G" 2>/dev/null || true
    ;;
*)
    echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
