/* CRC-16/CCITT-FALSE (docs/protocol.md, section 4): poly 0x1021, init 0xFFFF, no reflection,
 * no final XOR; check value 0x29B1 over "123456789". Bit by bit: no table in flash, and a
 * frame is at most 254 bytes, so the cost per received byte stays small and fixed. */
#include "proto.h"

uint16_t qp_crc16(const uint8_t *data, size_t len)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < len; i++) {
        crc = (uint16_t)(crc ^ (uint16_t)(data[i] << 8));
        for (int bit = 0; bit < 8; bit++) {
            uint16_t poly = (crc & 0x8000) ? 0x1021 : 0;
            crc = (uint16_t)((uint16_t)(crc << 1) ^ poly);
        }
    }
    return crc;
}
