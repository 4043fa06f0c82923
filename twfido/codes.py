"""The TW FidO service-provider API's interfaces and the error codes MoCert answers, with their words.

An answer's ``error_code`` is ``"0"``, or the interface's number and the code joined by a dash
(``SP-API-ATH-01-INV_SP_CHECKSUM``); a result not answered yet is the bare ``"20002"``, as client code
written for TW FidO expects. The zh-TW descriptions and the advice numbers follow the specification's
table (行動自然人憑證應用程式介面規格書 v2.9, 表5-1-1), its advice reworded where it speaks to the app's user
rather than to the agency; SP_IP_DENIED, SP_CALLBACK_NF and IDNUM_NOT_CONFIRMED (SP-API-WEB-01's) and the
English are ours. Kept here, apart from the server, so an
agency's code can read what each code means.
"""

from __future__ import annotations

from dataclasses import dataclass

SUCCESS = "0"
PENDING = "20002"  # not answered yet: the agency polls again (at least 4 s later)

# The interface of each operation, as error codes name it.
INTERFACES = {
    "getSpTicket": "SP-API-ATH-01",
    "getAthOrSignResult": "SP-API-ATH-02",
    "requestAthOrSignPush": "SP-API-ATH-03",
    "doBatchSigning": "SP-API-ATH-04",
    "checkDeviceStatus": "SP-API-LF-01",
    "fidoRedirect/web": "SP-API-WEB-01",
}


@dataclass(frozen=True)
class Code:
    zh: str  # the specification's description
    advice: str  # the specification's advice, with its number
    en: str

    def message(self) -> str:
        return f"{self.zh}。{self.advice} / {self.en}"


CODES: dict[str, Code] = {
    PENDING: Code("使用者認證/簽署作業尚未完成", "[9007] 請稍後再試。", "Not answered yet; poll again in a few seconds."),
    "PM_INV_NF": Code(
        "缺少參數或者格式不正確", "[5002] 請確認輸入資訊。", "A field is missing or malformed."
    ),
    "INV_SP_CHECKSUM": Code(
        "SP CHECKSUM 檢驗失敗", "[9004] 資料驗證不成功，請洽該應用服務之管理員。",
        "sp_checksum does not verify under the agency's key for these fields.",
    ),
    "SPSVCID_NF": Code(
        "Sp service id 未找到對應之 SP 資訊", "[9011] 資料驗證不成功，請洽該應用服務之管理員。",
        "No active agency has this sp_service_id.",
    ),
    "SP_IP_DENIED": Code(
        "來源 IP 不在機關登記之範圍", "請由已登記之主機呼叫。",
        "This address is not on the agency's registered list.",
    ),
    "SP_RATE_LIMITED": Code(
        "來源 IP 被拒絕之呼叫過多", "請稍後再試，並檢查 sp_checksum 之計算。",
        "Too many refused calls from this address; wait a minute, and check how sp_checksum is made.",
    ),
    "SP_CALLBACK_NF": Code(
        "機關未登記回傳網址（callback URL）", "請洽 MoCert 管理者登記後再使用網頁轉導。",
        "The agency has no callback URL registered, so SP-API-WEB-01 has nowhere to answer.",
    ),
    "TGT_INV": Code(
        "無效的操作對象代碼", "[9005] 資料驗證不成功，請洽該應用服務之管理員。",
        "op_code or op_mode is not one this operation takes.",
    ),
    "PM_IDN_FT_ERR": Code("身份證字號格式錯誤", "[9006] 身分證號格式錯誤，請確認輸入資訊。", "id_num is not a valid national ID."),
    "SPTKT_TIME_FT_ERR": Code(
        "自訂 Sp_ticket 逾期時間格式錯誤", "[9009] 資料驗證不成功，請洽該應用服務之管理員。",
        "time_limit is not a whole number of seconds.",
    ),
    "SPTKT_TIME_ORV": Code(
        "自訂 Sp_ticket 逾期時間超過範圍", "[9010] 資料驗證不成功，請洽該應用服務之管理員。",
        "time_limit must be from 30 to 600 seconds.",
    ),
    "SIGNDATA_LEN_LIMIT": Code(
        "簽章資料長度到達上限（上限1024 個字元）", "[9008] 簽章資料長度到達上限（上限1024 個字元）。",
        "sign_data is longer than 1,024 characters.",
    ),
    "BATSIGN_CNT_LIMIT": Code(
        "連續簽章文件數量達到上限", "[9013] 資料驗證不成功，請洽該應用服務之管理員。",
        "sign_data_set has more items than a batch may.",
    ),
    "TXNLOG_INS_ERR": Code(
        "認證簽署紀錄寫入失敗（機關使用相同的 transaction_id 送出）", "[1074] 請以新的 transaction_id 再試。",
        "This transaction_id was used already; each request needs a new one.",
    ),
    "IDNUM_USERPROF_NF": Code(
        "身分證字號未找到對應之使用者資訊", "[1051] 您尚未註冊綁定裝置，請先綁定裝置並申請行動自然人憑證。",
        "No one with this national ID uses MoCert.",
    ),
    "IDNUM_DEVPROF_NF": Code(
        "身分證字號未找到對應之裝置資訊", "[1053] 您尚未註冊綁定裝置，請先綁定裝置並申請行動自然人憑證。",
        "This person has no phone that can approve now.",
    ),
    "DEV_DESC_MISMATCH": Code(
        "未找到對應之自訂裝置名稱", "[1063] 請至行動自然人憑證網站確認該裝置名稱是否一致。",
        "This person has no usable phone of that name (device_user_def_desc).",
    ),
    "SPTKTID_SPTKT_NF": Code(
        "Sp_ticket_id 未找到對應之 Sp_ticket", "[1102] 驗證碼不存在，請重新執行驗證流程。",
        "No request of this agency and transaction has this sp_ticket_id.",
    ),
    "SPTKT_OVD": Code("Sp_ticket 逾期", "[1101] 驗證碼已過期，請重新執行驗證流程。", "The request expired unanswered."),
    "SPTKTID_SPTKT_RDM": Code(
        "Sp_ticket_id 對應之 Sp_ticket 已經被使用過", "[1103] 驗證碼已被使用過，請重新執行驗證流程。",
        "The request was answered already.",
    ),
    "SPTKT_PLD_FT_ERR": Code(
        "Sp_ticket 格式錯誤", "[9002] 資料格式有誤，請洽該應用服務之管理員。", "This is not an sp_ticket."
    ),
    "SPTKT_DIG_FT_ERR": Code(
        "Sp_ticket 簽章驗證失敗", "[9003] 資料驗證不成功，請洽該應用服務之管理員。",
        "The sp_ticket was cut or altered.",
    ),
    "DEVID_SPTKT_MISMATCH": Code(
        "Device_id 與 sp ticket 中對應之身份證字號雜湊值不符合", "[1064] 請確定使用合法裝置進行認證/簽章。",
        "This phone is not one the request was sent to.",
    ),
    "PM_INV_SG": Code("APP 端簽章驗證失敗", "[5004] 驗證不成功，請確認憑證有效性。", "The phone's signature does not verify."),
    "IDNUM_NOT_CONFIRMED": Code(
        "使用者未能確認身分證字號", "請重新執行驗證流程。",
        "The phone approved, but the person did not confirm their national ID on MoCert's page (too many "
        "wrong tries).",
    ),
    "APP_USER_CANCEL": Code(
        "APP 簽章時使用者取消", "[9015] APP 回報使用者取消簽章，簽章作業終止。", "The person declined on the phone."
    ),
}


def error_code(operation: str, code: str) -> str:
    """The ``error_code`` of ``code`` answered by ``operation``: "0", the bare pending code, or prefixed."""
    if code in (SUCCESS, PENDING):
        return code
    return f"{INTERFACES[operation]}-{code}"


def error_message(code: str) -> str:
    return "" if code == SUCCESS else CODES[code].message()
