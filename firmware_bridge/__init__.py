"""The serial wire protocol between sensor boards and the gateway, and a device emulator.

The codec (:mod:`firmware_bridge.codec`) is sans-IO; :mod:`firmware_bridge.link`
moves its bytes over a serial port; :mod:`firmware_bridge.emulator` plays a
whole book house on the other end.
"""
