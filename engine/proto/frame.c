/*
 * Frames, and the control messages that go through protobuf-c.
 */
#include "proto/proto.h"

#include <endian.h>
#include <string.h>

int sl_frame_parse(const uint8_t *buf, size_t len, uint32_t max_frame_bytes, struct sl_frame *frame)
{
	uint32_t flen;

	if (SL_UNLIKELY(max_frame_bytes > SL_FRAME_MAX_LIMIT))
		return -EINVAL;
	if (len < 4) {
		frame->need = SL_FRAME_HDR_LEN;
		return 0;
	}
	memcpy(&flen, buf, 4);
	flen = le32toh(flen);
	/* Decided on the prefix alone: the caller sizes its buffer from
	 * frame->need, so an oversized length must never get that far. */
	if (SL_UNLIKELY(flen == 0))
		return -SL_EPROTO_DECODE;
	if (SL_UNLIKELY(flen > max_frame_bytes))
		return -SL_EFRAME_TOO_BIG;
	frame->need = flen + 4;
	if (len < (size_t)flen + 4)
		return 0;
	frame->type = buf[4];
	frame->body = buf + SL_FRAME_HDR_LEN;
	frame->body_len = flen - 1;
	return (int)(flen + 4);
}

int sl_frame_header_write(uint8_t *dst, size_t cap, uint8_t type, size_t body_len)
{
	uint32_t le;

	if (body_len >= SL_FRAME_MAX_LIMIT)
		return -EMSGSIZE;
	if (cap < SL_FRAME_HDR_LEN)
		return -ENOSPC;
	le = htole32((uint32_t)body_len + 1);
	memcpy(dst, &le, 4);
	dst[4] = type;
	return SL_FRAME_HDR_LEN;
}

static const struct {
	const char *name;
	const ProtobufCMessageDescriptor *desc;
} sl__frame_types[SL_FRAME_TYPE_MAX + 1] = {
    [SLUICE__V1__FRAME_TYPE__FRAME_HELLO] = {"HELLO", &sluice__v1__hello__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_WELCOME] = {"WELCOME", &sluice__v1__welcome__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_PRODUCE] = {"PRODUCE", &sluice__v1__produce__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_ACK] = {"ACK", &sluice__v1__ack__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_ERROR] = {"ERROR", &sluice__v1__error__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_CREDIT] = {"CREDIT", &sluice__v1__credit__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_FETCH] = {"FETCH", &sluice__v1__fetch__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_FETCH_RESULT] = {"FETCH_RESULT",
                                                    &sluice__v1__fetch_result__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_COMMIT] = {"COMMIT", &sluice__v1__commit__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_COMMIT_ACK] = {"COMMIT_ACK",
                                                  &sluice__v1__commit_ack__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_METADATA] = {"METADATA",
                                                &sluice__v1__metadata_request__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_METADATA_RESULT] = {"METADATA_RESULT",
                                                       &sluice__v1__metadata__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_REPLICA_FETCH] = {"REPLICA_FETCH",
                                                     &sluice__v1__replica_fetch__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_REPLICA_DATA] = {"REPLICA_DATA",
                                                    &sluice__v1__replica_data__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_TOPIC_ADMIN] = {"TOPIC_ADMIN",
                                                   &sluice__v1__topic_admin__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_TOPIC_ADMIN_RESULT] =
        {"TOPIC_ADMIN_RESULT", &sluice__v1__topic_admin_result__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_GROUP_HEARTBEAT] = {"GROUP_HEARTBEAT",
                                                       &sluice__v1__group_heartbeat__descriptor},
    [SLUICE__V1__FRAME_TYPE__FRAME_GROUP_HEARTBEAT_RESULT] =
        {"GROUP_HEARTBEAT_RESULT", &sluice__v1__group_heartbeat_result__descriptor},
};

const ProtobufCMessageDescriptor *sl_frame_type_descriptor(uint8_t type)
{
	return type <= SL_FRAME_TYPE_MAX ? sl__frame_types[type].desc : NULL;
}

int sl_frame_type_check(uint8_t type)
{
	return sl_frame_type_descriptor(type) ? 0 : -SL_EPROTO_UNKNOWN;
}

const char *sl_frame_type_name(uint8_t type)
{
	return sl_frame_type_descriptor(type) ? sl__frame_types[type].name : "UNKNOWN";
}

size_t sl_frame_msg_size(const ProtobufCMessage *msg)
{
	return SL_FRAME_HDR_LEN + protobuf_c_message_get_packed_size(msg);
}

int sl_frame_encode_msg(uint8_t type, const ProtobufCMessage *msg, uint8_t *dst, size_t cap)
{
	const ProtobufCMessageDescriptor *desc = sl_frame_type_descriptor(type);
	size_t body;

	if (!desc)
		return -SL_EPROTO_UNKNOWN;
	if (!msg || msg->descriptor != desc)
		return -EINVAL;
	body = protobuf_c_message_get_packed_size(msg);
	if (body >= SL_FRAME_MAX_LIMIT)
		return -EMSGSIZE;
	if (SL_FRAME_HDR_LEN + body > cap)
		return -ENOSPC;
	sl_frame_header_write(dst, cap, type, body);
	protobuf_c_message_pack(msg, dst + SL_FRAME_HDR_LEN);
	return (int)(SL_FRAME_HDR_LEN + body);
}

int sl_frame_decode_msg(const struct sl_frame *frame, ProtobufCMessage **out)
{
	const ProtobufCMessageDescriptor *desc = sl_frame_type_descriptor(frame->type);

	*out = NULL;
	if (!desc)
		return -SL_EPROTO_UNKNOWN;
	*out = protobuf_c_message_unpack(desc, NULL, frame->body_len, frame->body);
	return *out ? 0 : -SL_EPROTO_DECODE;
}

void sl_frame_msg_free(ProtobufCMessage *msg)
{
	if (msg)
		protobuf_c_message_free_unpacked(msg, NULL);
}

int sl_frame_encode_error(uint8_t *dst, size_t cap, uint32_t code, const char *message)
{
	Sluice__V1__Error e = SLUICE__V1__ERROR__INIT;

	e.code = (Sluice__V1__ErrorCode)code;
	if (message)
		e.message = (char *)message; /* protobuf-c's field is not const; pack only reads */
	return sl_frame_encode_msg(SLUICE__V1__FRAME_TYPE__FRAME_ERROR, &e.base, dst, cap);
}

uint32_t sl_proto_wire_error(int err)
{
	switch (-err) {
	case SL_EFRAME_TOO_BIG:
		return SLUICE__V1__ERROR_CODE__ERR_FRAME_TOO_BIG;
	case SL_EFRAME_TRUNC:
	case SL_EPROTO_DECODE:
		return SLUICE__V1__ERROR_CODE__ERR_MALFORMED;
	case SL_EPROTO_UNKNOWN:
		return SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TYPE;
	case SL_EPROTO_VERSION:
		return SLUICE__V1__ERROR_CODE__ERR_VERSION;
	case SL_EPROTO_STATE:
		return SLUICE__V1__ERROR_CODE__ERR_STATE;
	case SL_ENOTOPIC:
		return SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC;
	case SL_EFENCED:
		return SLUICE__V1__ERROR_CODE__ERR_FENCED;
	case SL_ESEQ_GAP:
		return SLUICE__V1__ERROR_CODE__ERR_SEQUENCE;
	case SL_ECREDIT:
		return SLUICE__V1__ERROR_CODE__ERR_CREDIT;
	case SL_EOVERLOAD:
		return SLUICE__V1__ERROR_CODE__ERR_OVERLOAD;
	case SL_ETIMEOUT:
		return SLUICE__V1__ERROR_CODE__ERR_TIMEOUT;
	case SL_ELOG_FAILED:
		return SLUICE__V1__ERROR_CODE__ERR_STORAGE;
	case SL_ELOG_FULL:
		return SLUICE__V1__ERROR_CODE__ERR_DISK_FULL;
	case SL_ENOT_LEADER:
		return SLUICE__V1__ERROR_CODE__ERR_NOT_LEADER;
	case SL_ENOT_ENOUGH_REPLICAS:
		return SLUICE__V1__ERROR_CODE__ERR_NOT_ENOUGH_REPLICAS;
	case SL_EPRODUCER_EXPIRED:
		return SLUICE__V1__ERROR_CODE__ERR_PRODUCER_EXPIRED;
	case SL_EUNTRACKED:
		return SLUICE__V1__ERROR_CODE__ERR_UNTRACKED;
	case SL_EUNKNOWN_MEMBER:
		return SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_MEMBER;
	case SL_EOUT_OF_RANGE:
		return SLUICE__V1__ERROR_CODE__ERR_OFFSET_OUT_OF_RANGE;
	default:
		return SLUICE__V1__ERROR_CODE__ERR_INTERNAL;
	}
}
