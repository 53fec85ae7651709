// Chinese first for the error codes a person can do something about; the server's English text
// and the code follow, so nothing is hidden.
const TEXT = {
  rate_limited: "操作太频繁，请稍后再试",
  time_out_of_range: "时间超出允许范围",
  photo_quota_exceeded: "今日照片已达上限",
  photo_too_large: "照片太大",
  forbidden: "无权进行此操作",
  token_revoked: "链接已被吊销，请联系值班员",
  token_expired: "链接已过期，请联系值班员",
  session_replaced: "已在其他设备或页面登录",
  subscribe_in_progress: "正在同步，请稍候",
  room_full: "会商室已满",
  room_locked: "会商室已锁定",
  unavailable: "服务器暂不可用",
  invalid_schedule: "定时设置无效",
  bad_content_type: "请求格式错误",
};

export function errorText(code, message) {
  // Some of the server's messages are bilingual already.
  const zh = /[\u4e00-\u9fff]/.test(message || "") ? null : TEXT[code];
  const en = message || code;
  return zh ? `${zh} ${en} (${code})` : `${en} (${code})`;
}
